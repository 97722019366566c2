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
