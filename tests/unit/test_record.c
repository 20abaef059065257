/*
 * test_record.c: the FastCGI records of a direct answer (fcgi/record.c),
 * read back over a real socket and checked record by record: small,
 * empty, head only, and an answer of many records over several writevs.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <fastcgi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "record.h"

/* n bytes from fd into p; -1 on EOF or an error. */
static int
read_full(int fd, void *p, size_t n)
{
	size_t	got = 0;
	ssize_t	r;

	while (got < n) {
		r = read(fd, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* One answer: what is written, and what comes back. */
struct answer {
	unsigned	 id;
	unsigned char	*head, *body, *got;
	size_t		 hlen, blen;
	size_t		 n;	/* bytes got back */
	int		 nrec;	/* data records; negated at the stream's end */
};

/* Records from fd, each checked, up to FCGI_END_REQUEST: 1 if it came. */
static int
read_back(int fd, struct answer *a)
{
	static unsigned char	buf[65536];
	FCGI_Header		hd;
	FCGI_EndRequestBody	eb;
	size_t			len, all = a->hlen + a->blen;

	while (read_full(fd, &hd, sizeof(hd)) == 0) {
		CHECK(hd.version == FCGI_VERSION_1);
		CHECK(((unsigned)hd.requestIdB1 << 8 | hd.requestIdB0) ==
		    a->id);
		len = (size_t)hd.contentLengthB1 << 8 | hd.contentLengthB0;
		CHECK(hd.paddingLength == 0);
		if (hd.type == FCGI_END_REQUEST) {
			CHECK(len == sizeof(eb));
			CHECK(read_full(fd, &eb, sizeof(eb)) == 0);
			CHECK(eb.protocolStatus == FCGI_REQUEST_COMPLETE);
			return 1;
		}
		CHECK(hd.type == FCGI_STDOUT);
		CHECK(read_full(fd, buf, len) == 0);
		if (len == 0) {
			/* The stream's end: next is END. */
			a->nrec = -a->nrec;
			continue;
		}
		CHECK(a->nrec >= 0);	/* no data after the stream's end */
		CHECK(a->n + len <= all);
		if (a->n + len <= all)
			memcpy(a->got + a->n, buf, len);
		a->n += len;
		a->nrec++;
	}
	return 0;
}

/*
 * Write head + body as request id on fd, in pieces calls: the head with
 * the body's first piece, then the others, the last ending the request
 * (a streamed answer).  0, or -1.
 */
static int
write_pieces(int fd, unsigned id, const struct answer *a, unsigned pieces)
{
	size_t		off = 0, n;
	unsigned	i;

	for (i = 0; i < pieces; i++) {
		n = i + 1 == pieces ? a->blen - off : a->blen / pieces;
		if (record_answer(fd, id, i == 0 ? a->head : NULL, i == 0 ?
		    a->hlen : 0, a->body + off, n, i + 1 == pieces) == -1)
			return -1;
		off += n;
	}
	return 0;
}

/* Fork a writer of head + body as request id, in pieces calls; read and
 * check it all. */
static void
check_records(unsigned id, size_t hlen, size_t blen, unsigned pieces)
{
	struct answer	a = { id, malloc(hlen + 1), malloc(blen + 1),
			    malloc(hlen + blen + 1), hlen, blen, 0, 0 };
	size_t		i;
	int		sv[2], st;
	char		c;
	pid_t		pid;

	CHECK(a.head != NULL && a.body != NULL && a.got != NULL);
	for (i = 0; i < hlen; i++)
		a.head[i] = (unsigned char)('A' + i % 26);
	for (i = 0; i < blen; i++)
		a.body[i] = (unsigned char)(i * 7);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	if ((pid = check_fork()) == 0) {
		close(sv[0]);
		st = write_pieces(sv[1], id, &a, pieces);
		free(a.head);	/* for valgrind's look at the child */
		free(a.body);
		free(a.got);
		_exit(st == 0 ? 0 : 1);
	}
	close(sv[1]);
	CHECK(read_back(sv[0], &a));
	CHECK(a.nrec <= 0);		/* the empty record came */
	CHECK(a.n == hlen + blen);
	CHECK(memcmp(a.got, a.head, hlen) == 0);
	CHECK(memcmp(a.got + hlen, a.body, blen) == 0);
	/* Records are at most RECORD_CONTENT_MAX bytes: at least this many. */
	CHECK((size_t)-a.nrec >= (hlen + blen + RECORD_CONTENT_MAX - 1) /
	    RECORD_CONTENT_MAX);
	CHECK(read(sv[0], &c, 1) == 0);	/* nothing after END */
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0);
	close(sv[0]);
	free(a.head);
	free(a.body);
	free(a.got);
}

int
main(void)
{
	check_records(1, 60, 33, 1);
	check_records(65535, 0, 0, 1);
	check_records(258, 4000, 0, 1);
	check_records(9, 65535, 65536, 1);	/* parts on record bounds */
	check_records(11, 0, 2 * 65535 + 1, 1);
	check_records(7, 100, 300000, 1);	/* more than the socket takes */
	check_records(13, 10, 33 * 65535, 1);	/* more records than a writev */
	/* Streamed, in pieces: one stream, one end, whatever the cuts. */
	check_records(21, 60, 5 * 1024 * 1024 + 7, 5);
	check_records(22, 60, 3, 3);		/* empty pieces among them */
	check_records(23, 0, 0, 4);
	return check_done("test_record");
}
