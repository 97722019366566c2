//! The keys a stack inherits, declared once: the table below makes their
//! fields in every raw shape that takes them (`defaults:`, a shared stack,
//! a host, a host's stack), the one struct they resolve to
//! ([`Inheritable`]) and its merge ([`Inheritable::over`]).
//!
//! A stack takes each key from itself, else from its host, else from
//! `defaults:` (a shared stack inherits from each host it lands on).
//! The keys stay plain fields of each shape, not a `#[serde(flatten)]`ed
//! struct: flattening would lose the lines of values and the list of keys
//! an unknown key's error names.

use super::values::{BuildTimeout, KeepGenerations, MinAge, Period, Settle, UpTimeout, Watch};

/// The table of inherited keys: calls `$m! { TOKENS all [...] stacks [...] }`
/// with the keys every level takes (`all`) and those hosts do not
/// (`stacks`: `defaults:`, shared stacks and a host's stacks take them),
/// each with its type, as written, without `Option`.
macro_rules! with_keys {
    ($m:ident! { $($t:tt)* }) => {
        $m! {
            $($t)*
            all [
                /// Seconds between rebuilds (`0`: always due).
                build_period: Period,
                /// Seconds for `up` and the health gate.
                up_timeout: UpTimeout,
                /// Seconds the build, and the pull, may take each.
                build_timeout: BuildTimeout,
                /// Seconds the stack must stay up once it came up.
                settle: Settle,
                /// Seconds a new base or image digest must have been out
                /// before a run deploys it (`0`: at once).
                min_age: MinAge,
            ]
            stacks [
                /// Generations that keep their images, the running one
                /// included.
                keep_generations: KeepGenerations,
                /// Seconds the host watches the stack after a passed gate.
                watch: Watch,
            ]
        }
    };
}
pub(super) use with_keys;

/// A raw shape (a `struct` with its own fields) with the keys of the table
/// among them, where the shape has always listed them (the order is the
/// one an unknown key's error lists): `struct S { A } { B } { C }` is A,
/// the keys of all levels, B, the stack keys, C; a host's `struct S { A }
/// { B }` is A, the keys of all levels, B. Gives the shape a `keys()`
/// (the shape's module imports `Inheritable` and the keys' types).
macro_rules! raw_shape {
    (
        $(#[$m:meta])* $v:vis struct $name:ident { $($head:tt)* } { $($mid:tt)* } { $($tail:tt)* }
        all [$( $(#[$am:meta])* $a:ident: $aty:ty, )*]
        stacks [$( $(#[$sm:meta])* $s:ident: $sty:ty, )*]
    ) => {
        $(#[$m])*
        $v struct $name {
            $($head)*
            $( $(#[$am])* $v $a: Option<$aty>, )*
            $($mid)*
            $( $(#[$sm])* $v $s: Option<$sty>, )*
            $($tail)*
        }

        impl $name {
            /// The inherited keys it sets.
            $v fn keys(&self) -> Inheritable {
                Inheritable {
                    $( $a: self.$a, )*
                    $( $s: self.$s, )*
                }
            }
        }
    };
    (
        $(#[$m:meta])* $v:vis struct $name:ident { $($head:tt)* } { $($tail:tt)* }
        all [$( $(#[$am:meta])* $a:ident: $aty:ty, )*]
        stacks [$( $(#[$sm:meta])* $s:ident: $sty:ty, )*]
    ) => {
        $(#[$m])*
        $v struct $name {
            $($head)*
            $( $(#[$am])* $v $a: Option<$aty>, )*
            $($tail)*
        }

        impl $name {
            /// The inherited keys it sets (none of the stack keys).
            $v fn keys(&self) -> Inheritable {
                Inheritable {
                    $( $a: self.$a, )*
                    $( $s: None, )*
                }
            }
        }
    };
}
pub(super) use raw_shape;

/// The struct of the table's keys and its merge.
macro_rules! inheritable {
    (
        all [$( $(#[$am:meta])* $a:ident: $aty:ty, )*]
        stacks [$( $(#[$sm:meta])* $s:ident: $sty:ty, )*]
    ) => {
        /// The inherited keys of one level, or of a stack once resolved
        /// (`None`: not set at any level; the default applies).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Inheritable {
            $( $(#[$am])* pub $a: Option<$aty>, )*
            $( $(#[$sm])* pub $s: Option<$sty>, )*
        }

        impl Inheritable {
            /// These keys, those not set taken from `parent`.
            pub fn over(self, parent: Inheritable) -> Inheritable {
                Inheritable {
                    $( $a: self.$a.or(parent.$a), )*
                    $( $s: self.$s.or(parent.$s), )*
                }
            }
        }
    };
}

with_keys!(inheritable! {});
