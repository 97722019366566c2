# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# The command the controller asked for.
case $cmd in
check) shift && do_plan "$@" ;;
apply) do_apply "$@" ;;
rollback) do_rollback "$@" ;;
history) do_history "$@" ;;
status) do_status "$@" ;;
logs) do_logs "$@" ;;
*)
	echo "$m fatal unknown command $cmd"
	exit 3
	;;
esac
