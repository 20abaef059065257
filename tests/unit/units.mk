# Each unit test links only the modules it tests and the ones those need,
# so a module can be read and tested alone (Makefile: $(B)/tests/%).
test_app_MODS		= worker/app/app worker/app/hello worker/reply \
			  worker/ipc/msg worker/log worker/proc
test_direct_MODS	= worker/direct worker/ipc/chan worker/ipc/msg \
			  worker/log worker/proc
test_dispatch_MODS	= worker/ipc/dispatch worker/ipc/futex worker/log \
			  worker/proc
test_log_MODS		= worker/log worker/proc
test_mgmt_MODS		= fcgi/mgmt worker/ipc/msg worker/ipc/chan worker/log \
			  worker/proc
test_msg_MODS		= worker/ipc/msg worker/ipc/chan worker/proc
test_record_MODS	= fcgi/record worker/ipc/msg worker/proc
test_request_MODS	= fcgi/request
test_stats_MODS		= fcgi/status worker/ipc/stats worker/ipc/incident \
			  worker/log worker/proc
test_status_MODS	= fcgi/status worker/ipc/stats worker/ipc/incident \
			  worker/log worker/proc
test_store_MODS		= worker/store worker/kvdb worker/kvpg worker/pq worker/options worker/query \
			  worker/reply worker/ipc/msg worker/log worker/proc
test_workers_MODS	= fcgi/workers fcgi/status worker/ipc/chan worker/ipc/msg \
			  worker/ipc/dispatch worker/ipc/futex worker/ipc/stats \
			  worker/ipc/incident worker/log worker/proc
