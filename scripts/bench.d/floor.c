/*
 * floor.c -- the least work an epoll-based keep-alive proxy can do per
 * request on this machine, as a reference row for scripts/bench.
 *
 * NOT an HTTP proxy: it parses nothing. It assumes what holds for the
 * benchmark's traffic (wrk's small GETs, the upstreams' 13-byte answers, all
 * on loopback): one whole request per client read, one whole response per
 * upstream read, every send accepted whole. Per request it makes exactly the
 * four socket calls any proxy must make (recv from the client, send upstream,
 * recv from upstream, send to the client) plus its share of epoll_wait, and
 * nothing else: edge-triggered epoll registered once per socket, no timers,
 * no parsing, no allocation, no logging. Whatever a real proxy spends above
 * this row is its own code; what this row spends is the kernel's loopback
 * TCP, which no user-space design can avoid.
 *
 * usage: floor LISTEN_PORT UPSTREAM_PORT... [-w WORKERS] [-u | -C | -t | -s]
 * Modes, for `scripts/bench --shapes` (each the least its traffic needs):
 *   (none) upstream connections pooled and reused, one whole message per read
 *   -u     upstreams that close after every answer: a non-blocking connect
 *          per request, the request sent at once (no wait for EPOLLOUT: on
 *          loopback the handshake is done), the connection closed once its answer is read, and the
 *          upstream's `Connection: close` line dropped from the answer (the
 *          client stays kept alive, as behind a proxy)
 *   -C     clients that send `Connection: close`: that line dropped from the
 *          request (the pooled upstream stays alive), the answer's
 *          `Connection: keep-alive` made `Connection: close`, and the client
 *          closed after its answer: an accept per request
 *   -t     tunnel: each client pinned to its own upstream connection for its
 *          life, bytes relayed both ways as they come, a partial send kept
 *          until EPOLLOUT (pipelined requests, large answers)
 *   -s     sequential (not a row of the bench: for the `pipeline` note in
 *          the README): as -t, but the client's pipelined requests go
 *          upstream one at a time, the next once the answer before it is
 *          whole (its Content-Length), and the answers to one client read
 *          leave together, in one send: the least an HTTP/1.1 proxy that
 *          does not pipeline upstream (pasture, nginx, HAProxy) must do.
 *          Assumes body-less requests and answers under 64 KiB.
 * The rewrites are one memmem and one memmove over a head of ~150 bytes:
 * the least a proxy does to keep its two sides' connections apart.
 * With several workers (forked processes) each has its own SO_REUSEPORT
 * listener, so clients are spread evenly over them, as pasture, nginx and
 * HAProxy spread theirs. Anything outside the assumptions (a partial send, a read error) closes the
 * connection, which wrk then counts as an error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_UPSTREAMS 8
#define MAX_CONNS 65536

struct conn {
    int fd;
    char *pend;            /* -t: bytes not yet sent to fd (malloc'd), plen of them at pend+poff */
    size_t plen, poff;
    int upstream;          /* pool index for an upstream connection, -1 for a client */
    struct conn *peer;     /* the other side while a request is in flight */
    struct conn *next;     /* idle list (upstreams) or free list */
    struct seq *seq;       /* -s: a client's requests and answers in flight */
};

/* -s: requests not yet sent upstream, answers not yet sent to the client. */
struct seq {
    char rq[65536], an[65536];
    size_t rqlen, anlen;
    size_t astart, atotal; /* the answer being read: its offset in an, whole length (0: head not in) */
    int inflight;
};

static struct sockaddr_in ups[MAX_UPSTREAMS];
static int nups, rr, ep;
static char mode;          /* 0, 'u', 'C' or 't' (see the header) */
static struct conn conns[MAX_CONNS], *free_list, *idle[MAX_UPSTREAMS];

static struct conn *conn_new(int fd, int upstream)
{
    struct conn *c = free_list;
    if (!c) return NULL;
    free_list = c->next;
    c->fd = fd;
    c->upstream = upstream;
    c->peer = c->next = NULL;
    c->pend = NULL;
    c->plen = c->poff = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    c->seq = NULL;
    if (mode == 't' || mode == 's') ev.events |= EPOLLOUT;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        c->next = free_list;
        free_list = c;
        return NULL;
    }
    return c;
}

/* Close C and, if a request was in flight, its partner: a client gone
 * mid-request leaves a stray response behind, an upstream gone mid-request
 * leaves a client without an answer. */
static void conn_close(struct conn *c)
{
    if (c->fd < 0) return;
    struct conn *p = c->peer;
    close(c->fd);
    c->fd = -1;
    c->peer = NULL;
    free(c->pend);
    c->pend = NULL;
    c->plen = 0;
    free(c->seq);
    c->seq = NULL;
    if (c->upstream >= 0) {              /* unlink from the idle list */
        struct conn **pp = &idle[c->upstream];
        while (*pp && *pp != c) pp = &(*pp)->next;
        if (*pp) *pp = c->next;
    }
    c->next = free_list;
    free_list = c;
    if (p) {
        p->peer = NULL;
        conn_close(p);
    }
}

static struct conn *upstream_get(void)
{
    int i = rr++ % nups;
    struct conn *u = idle[i];
    if (u && mode != 'u') {
        idle[i] = u->next;
        u->next = NULL;
        return u;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0) return NULL;
    /* A non-blocking connect: on loopback the handshake is over when
     * connect() returns EINPROGRESS, so the request's send right after goes
     * through (an EAGAIN there would break the assumptions: closed). -u's
     * one send per connection needs no TCP_NODELAY; a pooled connection
     * sets it once. */
    if (connect(fd, (struct sockaddr *)&ups[i], sizeof ups[i]) != 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    if (mode != 'u') setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    u = conn_new(fd, i);
    if (!u) close(fd);
    return u;
}

/* In the message at BUF of *LEN bytes (room for CAP), replace the first
 * FROM with TO; returns whether it was there. */
static int replace(char *buf, ssize_t *len, size_t cap, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *at = memmem(buf, (size_t)*len, from, fl);
    if (!at || (size_t)*len - fl + tl > cap) return 0;
    memmove(at + tl, at + fl, (size_t)(buf + *len - (at + fl)));
    memcpy(at, to, tl);
    *len = *len - (ssize_t)fl + (ssize_t)tl;
    return 1;
}

static char buf[65536];

/* -t: send what DST still owes; 1 when it is all out. */
static int flush_pending(struct conn *dst)
{
    while (dst->plen) {
        ssize_t s = send(dst->fd, dst->pend + dst->poff, dst->plen, MSG_NOSIGNAL);
        if (s < 0) return errno == EAGAIN ? 0 : (conn_close(dst), 0);
        dst->poff += (size_t)s;
        dst->plen -= (size_t)s;
    }
    free(dst->pend);
    dst->pend = NULL;
    dst->poff = 0;
    return 1;
}

/* -t: relay what SRC has to its peer until SRC is drained or the peer's
 * socket is full (then the rest waits in peer->pend, and SRC is read again
 * once it is sent). */
static void relay(struct conn *src)
{
    for (;;) {
        struct conn *dst = src->peer;
        if (!dst && src->upstream < 0) {         /* a client's first bytes: pin an upstream */
            dst = upstream_get();
            if (!dst) { conn_close(src); return; }
            dst->peer = src;
            src->peer = dst;
        }
        if (!dst || dst->plen) return;
        ssize_t r = recv(src->fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) { conn_close(src); return; }
        ssize_t s = send(dst->fd, buf, (size_t)r, MSG_NOSIGNAL);
        if (s < 0 && errno != EAGAIN) { conn_close(src); return; }
        if (s < 0) s = 0;
        if (s < r) {
            dst->pend = malloc((size_t)(r - s));
            if (!dst->pend) { conn_close(src); return; }
            memcpy(dst->pend, buf + s, (size_t)(r - s));
            dst->plen = (size_t)(r - s);
            return;
        }
        if ((size_t)r < sizeof buf) return;      /* drained: the next bytes bring an edge */
    }
}

/* -s: the client's next whole request upstream, or, with none, the answers
 * held so far to the client in one send. */
static void seq_next(struct conn *c)
{
    struct seq *q = c->seq;
    char *end = memmem(q->rq, q->rqlen, "\r\n\r\n", 4);
    if (!end) {
        if (q->anlen && send(c->fd, q->an, q->anlen, MSG_NOSIGNAL) != (ssize_t)q->anlen) {
            conn_close(c);
            return;
        }
        q->anlen = 0;
        return;
    }
    size_t n = (size_t)(end + 4 - q->rq);
    if (send(c->peer->fd, q->rq, n, MSG_NOSIGNAL) != (ssize_t)n) { conn_close(c); return; }
    memmove(q->rq, q->rq + n, q->rqlen - n);
    q->rqlen -= n;
    q->inflight = 1;
    q->astart = q->anlen;
    q->atotal = 0;
}

/* -s: read what C has (a client's requests, or its upstream's answer). */
static void seq_read(struct conn *c)
{
    struct conn *cl = c->upstream < 0 ? c : c->peer;
    if (!cl) { conn_close(c); return; }
    if (!cl->seq) {
        cl->seq = calloc(1, sizeof *cl->seq);
        struct conn *u = cl->seq ? upstream_get() : NULL;
        if (!u) { conn_close(cl); return; }
        u->peer = cl;
        cl->peer = u;
    }
    struct seq *q = cl->seq;
    for (;;) {
        char *to = c == cl ? q->rq + q->rqlen : q->an + q->anlen;
        size_t room = c == cl ? sizeof q->rq - q->rqlen : sizeof q->an - q->anlen;
        if (!room) { conn_close(cl); return; }
        ssize_t r = recv(c->fd, to, room, 0);
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) { conn_close(c); return; }
        if (c == cl) {
            q->rqlen += (size_t)r;
            if (!q->inflight) seq_next(cl);
        } else {
            q->anlen += (size_t)r;
            char *a = q->an + q->astart;
            size_t have = q->anlen - q->astart;
            if (!q->atotal) {
                char *hend = memmem(a, have, "\r\n\r\n", 4);
                char *cl_at = hend ? memmem(a, (size_t)(hend - a), "Content-Length: ", 16) : NULL;
                if (hend) q->atotal = (size_t)(hend + 4 - a) + (cl_at ? strtoul(cl_at + 16, NULL, 10) : 0);
            }
            if (q->atotal && have >= q->atotal) {
                q->inflight = 0;
                seq_next(cl);
            }
        }
        if (cl->fd < 0) return;
    }
}

static void run(int lfd)
{
    struct epoll_event evs[512];
    ep = epoll_create1(0);
    for (int i = MAX_CONNS - 1; i >= 0; i--) {
        conns[i].fd = -1;
        conns[i].next = free_list;
        free_list = &conns[i];
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (!c) {
                /* One per event: the listener is level-triggered, so the
                 * event comes back while more wait, and an accept4 that
                 * meets EAGAIN is dear (the kernel makes a socket and a
                 * file before it looks at the queue). */
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (fd >= 0 && !conn_new(fd, -1)) close(fd);
                continue;
            }
            if (c->fd < 0) continue;     /* closed earlier in this batch */
            if (mode == 's') {
                if (evs[k].events & ~EPOLLOUT) seq_read(c);
                continue;
            }
            if (mode == 't') {
                if ((evs[k].events & EPOLLOUT) && c->plen && flush_pending(c) && c->peer)
                    relay(c->peer);
                if (c->fd >= 0 && (evs[k].events & ~EPOLLOUT)) relay(c);
                continue;
            }
            ssize_t r = recv(c->fd, buf, 16384, 0);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) { conn_close(c); continue; }
            if (c->upstream < 0) {       /* a request: forward it */
                struct conn *u = upstream_get();
                if (!u) { conn_close(c); continue; }
                u->peer = c;
                c->peer = u;
                if (mode == 'C') replace(buf, &r, sizeof buf, "\r\nConnection: close\r\n", "\r\n");
                if (send(u->fd, buf, r, MSG_NOSIGNAL) != r) { conn_close(c); continue; }
            } else {                     /* a response: back to its client */
                struct conn *cl = c->peer;
                c->peer = NULL;
                if (mode == 'u') {
                    conn_close(c);
                    replace(buf, &r, sizeof buf, "\r\nConnection: close\r\n", "\r\n");
                } else {
                    c->next = idle[c->upstream];
                    idle[c->upstream] = c;
                }
                if (!cl) continue;
                cl->peer = NULL;
                if (mode == 'C')
                    replace(buf, &r, sizeof buf, "\r\nConnection: keep-alive\r\n", "\r\nConnection: close\r\n");
                if (send(cl->fd, buf, r, MSG_NOSIGNAL) != r || mode == 'C') conn_close(cl);
            }
        }
    }
}

int main(int argc, char **argv)
{
    int workers = 1, lport = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-w") && i + 1 < argc) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-u") || !strcmp(argv[i], "-C") || !strcmp(argv[i], "-t") ||
                 !strcmp(argv[i], "-s"))
            mode = argv[i][1];
        else if (!lport) lport = atoi(argv[i]);
        else if (nups < MAX_UPSTREAMS) {
            ups[nups].sin_family = AF_INET;
            ups[nups].sin_port = htons((unsigned short)atoi(argv[i]));
            ups[nups].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            nups++;
        }
    }
    if (!lport || !nups || workers < 1) {
        fprintf(stderr, "usage: floor LISTEN_PORT UPSTREAM_PORT... [-w WORKERS] [-u | -C | -t | -s]\n");
        return 2;
    }
    /* One SO_REUSEPORT listener per worker, all bound before the first
     * fork: the kernel spreads connections evenly over them, as a balanced
     * pre-fork proxy spreads its clients over its workers (one shared
     * socket with EPOLLEXCLUSIVE would hand a burst of connects to whichever
     * worker wakes first). */
    signal(SIGPIPE, SIG_IGN);
    int lfds[64];
    if (workers > 64) workers = 64;
    for (int w = 0; w < workers; w++) {
        int one = 1;
        lfds[w] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(lfds[w], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(lfds[w], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        /* Accepted sockets inherit it on Linux: no system call per accept
         * (pasture does the same). */
        setsockopt(lfds[w], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)lport),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(lfds[w], (struct sockaddr *)&a, sizeof a) != 0 || listen(lfds[w], 4096) != 0) {
            perror("floor: bind/listen");
            return 1;
        }
    }
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (int k = 0; k < workers; k++)
                if (k != w) close(lfds[k]);
            run(lfds[w]);
        }
    }
    printf("floor: serving on 127.0.0.1:%d with %d worker(s)\n", lport, workers);
    fflush(stdout);
    while (wait(NULL) > 0) {}
    return 0;
}
