/*
 * test_mgmt.c: unit tests of fcgi/mgmt.c: the answers to management
 * records (the names asked for, each once, with --threads; malformed
 * pairs; unknown types), and the filter under libfcgi's reads, fed over a
 * socketpair one byte at a time and all at once, and with a head of it
 * read already and held (mgmt_hold, as the front hands libfcgi what it
 * read of a request): what comes out is the request's records alone, and
 * every management record is answered.
 * Exits 1 on any failure.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mgmt.h"

static unsigned char	in[4096], want[4096];
static size_t		inlen, wantlen;

/* A record into in (and into want unless it is a management record). */
static void
rec(unsigned type, unsigned id, const void *p, size_t n, unsigned pad)
{
	unsigned char	h[8] = { 1, (unsigned char)type,
	    (unsigned char)(id >> 8), (unsigned char)id,
	    (unsigned char)(n >> 8), (unsigned char)n, (unsigned char)pad, 0 };

	memcpy(in + inlen, h, 8);
	if (n > 0)
		memcpy(in + inlen + 8, p, n);
	memset(in + inlen + 8 + n, 0, pad);
	if (id != 0 || type == 1) {
		memcpy(want + wantlen, in + inlen, 8 + n + pad);
		wantlen += 8 + n + pad;
	}
	inlen += 8 + n + pad;
}

static void
test_answer(void)
{
	static const unsigned char three[] = "\x0e\x00" "FCGI_MAX_CONNS"
	    "\x0d\x00" "FCGI_MAX_REQS" "\x0f\x00" "FCGI_MPXS_CONNS"
	    "\x03\x00" "FOO" "\x0e\x00" "FCGI_MAX_CONNS";
	static const unsigned char bad[] = "\x0d\x00" "FCGI_MAX_REQS"
	    "\xff\xff\xff\xfe\x00" "FCGI_MAX_CONNS";
	unsigned char	out[MGMT_ANSWER_MAX];
	size_t		n;

	mgmt_init(512);
	n = mgmt_answer(9, three, sizeof(three) - 1, out);
	CHECK(out[0] == 1 && out[1] == 10 && out[2] == 0 && out[3] == 0);
	CHECK((out[4] << 8 | out[5]) == 2 + 14 + 3 + 2 + 13 + 3 + 2 + 15 + 1);
	CHECK(n % 8 == 0 && n == 8u + (out[4] << 8 | out[5]) + out[6]);
	CHECK(memcmp(out + 8, "\x0e\x03" "FCGI_MAX_CONNS512" "\x0d\x03"
	    "FCGI_MAX_REQS512" "\x0f\x01" "FCGI_MPXS_CONNS0", 53) == 0);
	n = mgmt_answer(9, bad, sizeof(bad) - 1, out);
	CHECK(n == 8 + 2 + 13 + 3 + 6 && out[5] == 18);
	n = mgmt_answer(9, NULL, 0, out);
	CHECK(n == 8 && out[1] == 10 && out[5] == 0);
	n = mgmt_answer(99, NULL, 0, out);
	CHECK(n == 16 && out[1] == 11 && out[5] == 8 && out[8] == 99);
}

#define HOLD_ALL	((size_t)-1)

/* The filter: in's first hold bytes (HOLD_ALL: every one) held, the rest
 * written, all read back rdlen bytes at a time. */
static void
test_filter(size_t rdlen, size_t hold)
{
	static const unsigned char q[] = "\x0f\x00" "FCGI_MPXS_CONNS";
	unsigned char	got[4096], ans[4096];
	struct mgmt_filter f = { 0 };
	size_t		glen = 0;
	ssize_t		n;
	int		sv[2];

	inlen = wantlen = 0;
	rec(9, 0, q, sizeof(q) - 1, 7);
	rec(1, 1, "\0\1\1\0\0\0\0\0", 8, 0);
	rec(4, 1, "\x01\x01" "ab", 4, 4);
	rec(77, 0, "zz", 2, 0);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, "body", 4, 4);
	rec(9, 0, "\xff\xff\xff\xfe", 4, 4);
	rec(5, 1, NULL, 0, 0);
	if (hold == HOLD_ALL)
		hold = inlen;
	CHECK(hold <= inlen);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[1], in + hold, inlen - hold) == (ssize_t)(inlen - hold));
	CHECK(shutdown(sv[1], SHUT_WR) == 0);
	mgmt_reset(&f);
	mgmt_hold(&f, in, hold);
	CHECK(mgmt_held(&f) == hold);
	while ((n = mgmt_read(&f, sv[0], got + glen, rdlen)) > 0)
		glen += (size_t)n;
	CHECK(n == 0 && mgmt_held(&f) == 0);
	CHECK(glen == wantlen && memcmp(got, want, wantlen) == 0);
	n = read(sv[1], ans, sizeof(ans));
	/* FCGI_MPXS_CONNS=0 (8 + 17 + 7), UNKNOWN_TYPE (16), an empty
	 * result (8). */
	CHECK(n == 32 + 16 + 8);
	CHECK(n > 49 && ans[1] == 10 && ans[33] == 11 && ans[40] == 77 &&
	    ans[49] == 10);
	CHECK(mgmt_read(&f, sv[0], got, 8) == -1);
	mgmt_free(&f);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	test_answer();
	test_filter(9, 0);
	test_filter(13, 0);
	test_filter(1024, 0);
	/* Held: inside the first management record, inside the request's
	 * records, all of it; taken whole or a piece per read. */
	test_filter(9, 5);
	test_filter(13, 40);
	test_filter(1024, 40);
	test_filter(1024, HOLD_ALL);
	test_filter(9, HOLD_ALL);
	return check_done("test_mgmt");
}
