/*
 * load.c: the application a worker runs (app.h): --cgi's runner
 * (cgirun.h), --exec's adapter (exec.h), an --app shared object, or the
 * built-in default (hello.c).
 * A shared object is opened RTLD_NOW (every symbol it needs resolved at
 * once, so a missing one fails the start, not a request) and RTLD_LOCAL
 * (its names do not leak into what it loads later); it sees pipepool's
 * pp_* functions because the binary exports them (worker/app/pipepool.sym).
 * It is never closed: a worker runs one application for its life.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "app.h"
#include "cgirun.h"
#include "exec.h"

static const struct pp_app	*current;

/* The descriptor of the shared object file, or NULL with err set. */
static const struct pp_app *
load(const char *file, char *err, size_t errlen)
{
	const struct pp_app	*a;
	void			*dl;
	const char		*e;

	if ((dl = dlopen(file, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		(void)snprintf(err, errlen, "%s", e != NULL ? e :
		    "dlopen failed");
		return NULL;
	}
	if ((a = dlsym(dl, "pipepool_app")) == NULL) {
		(void)snprintf(err, errlen, "no pipepool_app descriptor");
		goto fail;
	}
	if (a->abi != PIPEPOOL_ABI) {
		(void)snprintf(err, errlen, "ABI %u, this pipepool speaks %u",
		    a->abi, PIPEPOOL_ABI);
		goto fail;
	}
	if (a->handle == NULL) {
		(void)snprintf(err, errlen, "pipepool_app has no handle");
		goto fail;
	}
	return a;
fail:
	(void)dlclose(dl);
	return NULL;
}

int
app_start(const struct options *o, unsigned worker, char *err,
    size_t errlen)
{
	const struct pp_app	*a;

	if (o->cgi)
		a = cgi_app(o->cgi_root);
	else if (o->exec[0] != '\0')
		a = exec_app(o->exec);
	else if (o->app[0] != '\0') {
		if ((a = load(o->app, err, errlen)) == NULL)
			return -1;
	} else
		a = &app_default;
	if (a->init != NULL && a->init(worker) == -1) {
		(void)snprintf(err, errlen, "init failed");
		return -1;
	}
	current = a;
	return 0;
}

/* Once: a second call (an exit after a retirement) does nothing. */
void
app_stop(void)
{
	const struct pp_app	*a = current;

	current = NULL;
	if (a != NULL && a->fini != NULL)
		a->fini();
	app_free();
}

const struct pp_app *
app_current(void)
{
	return current;
}
