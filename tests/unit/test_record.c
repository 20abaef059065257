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

#include "record.h"

static int	failures;

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", \
    __FILE__, __LINE__, #c); failures++; } } while (0)

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

/* Fork a writer of head + body as request id; read and check it all. */
static void
check_records(unsigned id, size_t hlen, size_t blen)
{
	unsigned char	*head = malloc(hlen + 1), *body = malloc(blen + 1);
	unsigned char	*got = malloc(hlen + blen + 1), buf[65536];
	FCGI_Header	 hd;
	FCGI_EndRequestBody eb;
	size_t		 n = 0, len, i;
	int		 sv[2], st, nrec = 0, ended = 0;
	pid_t		 pid;

	CHECK(head != NULL && body != NULL && got != NULL);
	for (i = 0; i < hlen; i++)
		head[i] = (unsigned char)('A' + i % 26);
	for (i = 0; i < blen; i++)
		body[i] = (unsigned char)(i * 7);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	if ((pid = fork()) == 0) {
		close(sv[0]);
		st = record_answer(sv[1], id, head, hlen, body, blen);
		free(head);	/* for valgrind's look at the child */
		free(body);
		free(got);
		_exit(st == 0 ? 0 : 1);
	}
	close(sv[1]);
	while (!ended && read_full(sv[0], &hd, sizeof(hd)) == 0) {
		CHECK(hd.version == FCGI_VERSION_1);
		CHECK(((unsigned)hd.requestIdB1 << 8 | hd.requestIdB0) == id);
		len = (size_t)hd.contentLengthB1 << 8 | hd.contentLengthB0;
		CHECK(hd.paddingLength == 0);
		if (hd.type == FCGI_END_REQUEST) {
			CHECK(len == sizeof(eb));
			CHECK(read_full(sv[0], &eb, sizeof(eb)) == 0);
			CHECK(eb.protocolStatus == FCGI_REQUEST_COMPLETE);
			ended = 1;
			break;
		}
		CHECK(hd.type == FCGI_STDOUT);
		CHECK(read_full(sv[0], buf, len) == 0);
		if (len == 0) {
			nrec = -nrec;	/* the stream's end: next is END */
			continue;
		}
		CHECK(nrec >= 0);	/* no data after the stream's end */
		CHECK(n + len <= hlen + blen);
		if (n + len <= hlen + blen)
			memcpy(got + n, buf, len);
		n += len;
		nrec++;
	}
	CHECK(ended);
	CHECK(nrec <= 0);		/* the empty record came */
	CHECK(n == hlen + blen);
	CHECK(memcmp(got, head, hlen) == 0);
	CHECK(memcmp(got + hlen, body, blen) == 0);
	/* Records are at most RECORD_CONTENT_MAX bytes: at least this many. */
	CHECK((size_t)-nrec >= (hlen + blen + RECORD_CONTENT_MAX - 1) /
	    RECORD_CONTENT_MAX);
	CHECK(read(sv[0], buf, 1) == 0);	/* nothing after END */
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0);
	close(sv[0]);
	free(head);
	free(body);
	free(got);
}

int
main(void)
{
	check_records(1, 60, 33);
	check_records(65535, 0, 0);
	check_records(258, 4000, 0);
	check_records(9, 65535, 65536);	/* parts on record bounds */
	check_records(11, 0, 2 * 65535 + 1);
	check_records(7, 100, 300000);	/* more than the socket takes at once */
	check_records(13, 10, 33 * 65535);	/* more records than a writev */
	if (failures) {
		fprintf(stderr, "test_record: %d failures\n", failures);
		return 1;
	}
	printf("test_record: ok\n");
	return 0;
}
