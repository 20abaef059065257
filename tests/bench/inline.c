/*
 * inline.c - baseline FastCGI responder for `make bench`.
 *
 * A minimal libfcgi responder that answers every request in-process, with
 * exactly the bytes pipepool's hello handler gives:
 *
 *   Status: 200, Content-Type: text/plain; charset=utf-8,
 *   X-Worker-Pid: <pid>, Content-Length: 33,
 *   body "hello world from another process\n"
 *
 * and `POST /echo`, which echoes the request body byte for byte as
 * application/octet-stream with its Content-Length.
 *
 * Usage: inline -s SOCKET_PATH [-t THREADS] [-p PROCESSES] [-b BACKLOG] [-w]
 *
 * -w: on a kept connection, wait in poll(2) for the next request before
 * FCGX_Accept_r() reads it.  A thread blocked in read(2) on a unix socket
 * is also woken each time nginx reads the answer it wrote (the socket has
 * one wait queue); poll wakes only for input.  pipepool's front does this;
 * `make bench` measures this variant as a reference, beside the plain loop
 * every libfcgi program has.
 *
 * Every thread calls FCGX_Accept_r() on the same listening socket with no
 * mutex around it.  libfcgi's threaded.c example holds a mutex around
 * FCGX_Accept_r(), which collapses throughput with nginx fastcgi_keep_conn:
 * on a kept connection FCGX_Accept_r() blocks reading the next request on
 * that connection, with the mutex held, so one idle connection stalls every
 * other thread.
 *
 * With fastcgi_keep_conn a libfcgi thread is pinned to one connection until
 * nginx closes it, so THREADS*PROCESSES must be at least the number of
 * upstream connections nginx may open (client concurrency + keepalive cache),
 * or requests sit unaccepted in the backlog.
 *
 * SIGTERM/SIGINT: the process unlinks the socket (first process only) and
 * exits 0.  Children of -p die with their parent.
 *
 * Build: gcc -std=c11 -Wall -Wextra -Werror -O2 inline.c -o inline -lfcgi -lpthread
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcgiapp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELLO_BODY "hello world from another process\n"
#define MAX_ECHO_BODY ((size_t)64 * 1024 * 1024)

static int listen_fd = -1;
static int poll_first;      /* -w */
static char pid_header[64];
static size_t pid_header_len;

static void usage(FILE *f)
{
    fprintf(f, "usage: inline -s SOCKET_PATH [-t THREADS] [-p PROCESSES] [-b BACKLOG] [-w]\n");
}

static long parse_num(const char *s, const char *what, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "inline: bad %s '%s' (want %ld..%ld)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

/* Read and discard whatever is left of the request body. */
static void drain_stdin(FCGX_Stream *in)
{
    char buf[16384];
    while (FCGX_GetStr(buf, (int)sizeof buf, in) > 0) {
    }
}

static void send_hello(FCGX_Request *req)
{
    static const char head[] =
        "Status: 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n";
    static const char tail[] =
        "Content-Length: 33\r\n"
        "\r\n" HELLO_BODY;
    drain_stdin(req->in);
    FCGX_PutStr(head, (int)sizeof head - 1, req->out);
    FCGX_PutStr(pid_header, (int)pid_header_len, req->out);
    FCGX_PutStr(tail, (int)sizeof tail - 1, req->out);
}

/* libfcgi's own FCGX_FPrintF knows no %zu: format with snprintf. */
static void put_fmt(FCGX_Stream *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put_fmt(FCGX_Stream *out, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    FCGX_PutStr(buf, n, out);
}

static void send_status(FCGX_Request *req, const char *status)
{
    drain_stdin(req->in);
    put_fmt(req->out,
            "Status: %s\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "%s"
            "Content-Length: %zu\r\n"
            "\r\n%s\n",
            status, pid_header, strlen(status) + 1, status);
}

/* Echo the request body.  The buffer (*bufp, *capp) is per thread, reused across
 * requests so the steady state does no allocation. */
static void send_echo(FCGX_Request *req, char **bufp, size_t *capp)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
    size_t want = 0;
    if (cl != NULL && *cl != '\0') {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno != 0 || *end != '\0' || v > MAX_ECHO_BODY) {
            send_status(req, v > MAX_ECHO_BODY ? "413 Payload Too Large" : "400 Bad Request");
            return;
        }
        want = (size_t)v;
    }
    size_t len = 0;
    for (;;) {
        if (len == *capp) {
            size_t ncap = *capp ? *capp * 2 : (want ? want : 65536);
            if (ncap < want)
                ncap = want;
            if (ncap > MAX_ECHO_BODY + 1)
                ncap = MAX_ECHO_BODY + 1;
            if (ncap <= len) {
                send_status(req, "413 Payload Too Large");
                return;
            }
            char *nb = realloc(*bufp, ncap);
            if (nb == NULL) {
                send_status(req, "500 Internal Server Error");
                return;
            }
            *bufp = nb;
            *capp = ncap;
        }
        size_t room = *capp - len;
        int chunk = room > INT_MAX ? INT_MAX : (int)room;
        int n = FCGX_GetStr(*bufp + len, chunk, req->in);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    put_fmt(req->out,
            "Status: 200 OK\r\n"
            "Content-Type: application/octet-stream\r\n"
            "%s"
            "Content-Length: %zu\r\n"
            "\r\n",
            pid_header, len);
    size_t off = 0;
    while (off < len) {
        size_t left = len - off;
        int chunk = left > INT_MAX ? INT_MAX : (int)left;
        if (FCGX_PutStr(*bufp + off, chunk, req->out) != chunk)
            break;
        off += (size_t)chunk;
    }
}

static int is_echo(FCGX_Request *req)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    if (method == NULL || strcmp(method, "POST") != 0)
        return 0;
    const char *uri = FCGX_GetParam("DOCUMENT_URI", req->envp);
    if (uri != NULL)
        return strcmp(uri, "/echo") == 0;
    uri = FCGX_GetParam("REQUEST_URI", req->envp);
    if (uri == NULL)
        return 0;
    size_t n = strcspn(uri, "?");
    return n == 5 && strncmp(uri, "/echo", 5) == 0;
}

static void *serve(void *arg)
{
    (void)arg;
    FCGX_Request req;
    char *buf = NULL;
    size_t cap = 0;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0) {
        fprintf(stderr, "inline: FCGX_InitRequest failed\n");
        return NULL;
    }
    /* No mutex: accept() on one listening socket is thread-safe and the
     * kernel wakes a single waiter per connection. */
    for (;;) {
        if (poll_first && req.ipcFd >= 0) {
            struct pollfd pfd = { req.ipcFd, POLLIN, 0 };
            while (poll(&pfd, 1, -1) == -1 && errno == EINTR)
                ;
        }
        if (FCGX_Accept_r(&req) < 0)
            break;
        if (is_echo(&req))
            send_echo(&req, &buf, &cap);
        else
            send_hello(&req);
        FCGX_Finish_r(&req);
    }
    free(buf);
    return NULL;
}

static pid_t children[256];
static long nchildren;

/* Start the threads of this process and wait for SIGTERM/SIGINT, which main()
 * blocked in every thread (after FCGX_Init installed its own SIGTERM
 * handler) so that only sigwait() below takes them. */
static int run_process(long nthreads, const char *path, const sigset_t *set, int owner)
{
    pid_header_len = (size_t)snprintf(pid_header, sizeof pid_header,
                                      "X-Worker-Pid: %ld\r\n", (long)getpid());

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (long i = 0; i < nthreads; i++) {
        pthread_t tid;
        int rc = pthread_create(&tid, &attr, serve, NULL);
        if (rc != 0) {
            fprintf(stderr, "inline: pthread_create: %s\n", strerror(rc));
            if (owner)
                unlink(path);
            _exit(1);
        }
    }
    pthread_attr_destroy(&attr);

    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGCHLD) {
            /* A child died: reap it and keep serving with the rest. */
            while (waitpid(-1, NULL, WNOHANG) > 0) {
            }
            continue;
        }
        break;
    }
    FCGX_ShutdownPending();
    if (owner) {
        unlink(path);
        for (long i = 0; i < nchildren; i++)
            kill(children[i], SIGTERM);
        for (long i = 0; i < nchildren; i++)
            waitpid(children[i], NULL, 0);
    }
    /* Threads are parked in accept()/read(); leave without unwinding them. */
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long nthreads = 4, nprocs = 1, backlog = 1024;
    int opt;
    while ((opt = getopt(argc, argv, "s:t:p:b:wh")) != -1) {
        switch (opt) {
        case 's': path = optarg; break;
        case 't': nthreads = parse_num(optarg, "thread count", 1, 4096); break;
        case 'p': nprocs = parse_num(optarg, "process count", 1, 256); break;
        case 'b': backlog = parse_num(optarg, "backlog", 1, 65535); break;
        case 'w': poll_first = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (FCGX_Init() != 0) {
        fprintf(stderr, "inline: FCGX_Init failed\n");
        return 1;
    }
    /* Our signal handling, installed after FCGX_Init's: block the signals
     * before forking or starting threads, so every thread and child
     * inherits the mask and only sigwait() sees them. */
    /* A shell starts background jobs with SIGINT ignored, and an ignored
     * signal is dropped even while blocked: restore the default first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    listen_fd = FCGX_OpenSocket(path, (int)backlog);
    if (listen_fd < 0) {
        fprintf(stderr, "inline: cannot listen on %s: %s\n", path, strerror(errno));
        return 1;
    }
    pid_t owner_pid = getpid();
    for (long i = 1; i < nprocs; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("inline: fork");
            unlink(path);
            for (long j = 0; j < nchildren; j++)
                kill(children[j], SIGTERM);
            return 1;
        }
        if (pid == 0) {
            nchildren = 0;
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != owner_pid)
                _exit(0);
            return run_process(nthreads, path, &set, 0);
        }
        children[nchildren++] = pid;
    }
    return run_process(nthreads, path, &set, 1);
}
