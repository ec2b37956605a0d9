/* Load generator child for Postfix policy servers: the C twin of `policyload.py --child`.
 *
 * Same profiles (byte for byte the same requests), same protocol with the parent (print
 * "ready", wait for a line on stdin, drive, print the JSON result), same saturated and paced
 * modes. It exists because on a 2-core machine the Python child spent about 18 us of CPU per
 * request, CPU the measured server then did not have; this one spends a few us, most of it
 * in the kernel. policyload.py builds it with the system's cc on first use and falls back to
 * the Python child when it cannot.
 *
 * Usage: policyload PORT PROFILE FIRST_CONN CONNS SECONDS RATE_PER_CONN REQUESTS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PER_CONN 400            /* distinct pre-encoded requests per connection, cycled */
#define REQ_MAX 1024
#define REPLY_MAX 8192
#define WORDS_MAX 16

static const char *RECIPIENTS[] = {"alice@example.test", "bob@example.test", "erin@example.test",
                                   "carol@example.test", "nobody@example.test",
                                   "postmaster@example.test", "alice+tag@example.test"};

static int policyd_request(char *out, long i, long conn) {
    const char *rcpt = RECIPIENTS[(i + conn) % 7];
    return snprintf(out, REQ_MAX,
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=198.51.100.%ld\nclient_name=mx.sender.test\n"
        "reverse_client_name=mx.sender.test\nhelo_name=mx.sender.test\n"
        "sender=user%ld@sender.test\nrecipient=%s\nrecipient_count=0\n"
        "queue_id=\ninstance=%lx.%lx\nsize=2048\netrn_domain=\nstress=\n"
        "sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
        "ccert_fingerprint=\nencryption_protocol=\nencryption_cipher=\nencryption_keysize=0\n"
        "client_port=40000\npolicy_context=\nserver_address=192.0.2.1\nserver_port=25\n\n",
        (i + conn) % 250 + 1, (i * 31 + conn) % 97, rcpt, conn, i);
}

static int greylist_request(char *out, long i, long conn) {
    long t = (i * 7919 + conn * 104729) % 2000;
    return snprintf(out, REQ_MAX,
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=10.%ld.%ld.%ld\nclient_name=unknown\n"
        "helo_name=h%ld.example.net\nsender=s%ld@sender%ld.example.net\n"
        "recipient=user%ld@example.org\ninstance=%ld.%ld\nqueue_id=\nsize=0\n\n",
        t % 250, t / 250, (i % 5) + 1, t, t, t % 97, t % 50, conn, i);
}

static char salt[64];

static int greylist_new_request(char *out, long i, long conn) {
    return snprintf(out, REQ_MAX,
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=10.%ld.%ld.%ld\nclient_name=unknown\n"
        "helo_name=h%ld.example.net\nsender=s%sx%ldx%ld@sender%ld.example.net\n"
        "recipient=user%ld@example.org\ninstance=%ld.%ld\nqueue_id=\nsize=0\n\n",
        conn % 250, (i / 250) % 250, i % 250 + 1, conn, salt, conn, i, i % 97, i % 50, conn, i);
}

/* The realistic mix: even requests a never-seen triplet, odd ones a repeat from the pool. */
static int greylist_mix_request(char *out, long i, long conn) {
    return i % 2 == 0 ? greylist_new_request(out, i, conn) : greylist_request(out, i, conn);
}

/* The realistic profile: see realistic_parts() in policyload.py for the layout (a cycle of 6
 * requests in 4 messages per connection, half never-seen triplets, half from the pool). */
#define RL_PAIRS 1000
#define RL_NETS 500
#define RL_DOMAINS 100
#define RL_RCPTS 50
static const int RL_MSG[6] = {0, 1, 2, 2, 3, 3};

static int realistic_request(char *out, long i, long conn) {
    long c = i / 6, pos = i % 6, m = 4 * c + RL_MSG[pos], d, rcpt;
    char client[32], sender[160], name[64];
    if (pos == 0 || pos == 2 || pos == 3) {
        long n = 2 * c + (pos == 0 ? 0 : 1);
        d = (n * 37 + conn * 11) % RL_DOMAINS;
        snprintf(client, sizeof client, "172.%ld.%ld.%ld", 16 + conn % 16, (n / 250) % 256, n % 250 + 1);
        snprintf(sender, sizeof sender, "n%sx%ldx%ld@sender%ld.example.net", salt, conn, n, d);
        snprintf(name, sizeof name, "unknown");
        rcpt = (7 * n + 3 * conn + 13 * (pos == 3)) % RL_RCPTS;
    } else {
        long p = 2 * c + (pos == 1 ? 0 : 1);
        long q = (p * 7919 + conn * 104729) % RL_PAIRS, s = pos == 1 ? c % 2 : pos - 4, net = q % RL_NETS;
        d = q % RL_DOMAINS;
        snprintf(client, sizeof client, "10.%ld.%ld.%ld", net % 250, net / 250, q / RL_NETS + 1);
        snprintf(sender, sizeof sender, "u%ld@sender%ld.example.net", q, d);
        snprintf(name, sizeof name, "mx.sender%ld.example.net", d);
        rcpt = (2 * q + s + q / 50) % RL_RCPTS;
    }
    return snprintf(out, REQ_MAX,
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=%s\nclient_name=%s\nreverse_client_name=%s\n"
        "helo_name=mx.sender%ld.example.net\nsender=%s\nrecipient=user%ld@example.org\n"
        "recipient_count=0\nqueue_id=\ninstance=%lx.%lx\nsize=20480\netrn_domain=\nstress=\n"
        "sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
        "ccert_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n"
        "encryption_keysize=256\nclient_port=40000\npolicy_context=\nserver_address=192.0.2.1\n"
        "server_port=25\n\n",
        client, name, name, d, sender, rcpt, conn, m);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* the clock of Python's time.perf_counter() */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

struct conn {
    int fd;
    long idx;
    double sent_at;
    int inflight;
    double owed;                /* paced: earliest missed slot, or -1 */
    size_t got;
    char reply[REPLY_MAX];
    char (*reqs)[REQ_MAX];      /* pre-encoded profiles */
    int *lens;
};

/* paced schedule: a binary min-heap of (due time, connection) */
static double *heap_at;
static int *heap_k, heap_n;

static void heap_push(double at, int k) {
    int i = heap_n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (heap_at[p] <= at) break;
        heap_at[i] = heap_at[p]; heap_k[i] = heap_k[p]; i = p;
    }
    heap_at[i] = at; heap_k[i] = k;
}

static void heap_pop(double *at, int *k) {
    *at = heap_at[0]; *k = heap_k[0];
    double last_at = heap_at[--heap_n];
    int last_k = heap_k[heap_n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= heap_n) break;
        if (c + 1 < heap_n && heap_at[c + 1] < heap_at[c]) c++;
        if (last_at <= heap_at[c]) break;
        heap_at[i] = heap_at[c]; heap_k[i] = heap_k[c]; i = c;
    }
    heap_at[i] = last_at; heap_k[i] = last_k;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT PROFILE FIRST_CONN CONNS SECONDS RATE_PER_CONN REQUESTS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *profile = argv[2];
    long first = atol(argv[3]);
    int n = atoi(argv[4]);
    double seconds = atof(argv[5]), rate_per_conn = atof(argv[6]);
    long limit = atol(argv[7]);
    int (*make)(char *, long, long) = NULL, fresh = 0;
    if (!strcmp(profile, "policyd")) make = policyd_request;
    else if (!strcmp(profile, "greylist")) make = greylist_request;
    else if (!strcmp(profile, "greylist-new")) { make = greylist_new_request; fresh = 1; }
    else if (!strcmp(profile, "greylist-mix")) { make = greylist_mix_request; fresh = 1; }
    else if (!strcmp(profile, "realistic")) { make = realistic_request; fresh = 1; }
    else { fprintf(stderr, "unknown profile %s\n", profile); return 2; }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(salt, sizeof salt, "%d%ld", (int)getpid(), (long)((ts.tv_sec * 1000000000LL + ts.tv_nsec) % 1000000000LL));

    struct conn *cs = calloc(n, sizeof *cs);
    int ep = epoll_create1(0);
    if (!cs || ep < 0) die("setup");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int k = 0; k < n; k++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = k};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        cs[k].fd = fd;
        cs[k].owed = -1;
        if (!fresh) {
            cs[k].reqs = malloc(PER_CONN * sizeof *cs[k].reqs);
            cs[k].lens = malloc(PER_CONN * sizeof *cs[k].lens);
            if (!cs[k].reqs || !cs[k].lens) die("malloc");
            for (int i = 0; i < PER_CONN; i++) cs[k].lens[i] = make(cs[k].reqs[i], i, first + k);
        }
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 1;

    size_t lat_cap = 1 << 16, lat_n = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    char words[WORDS_MAX][32];
    long counts[WORDS_MAX];
    int nwords = 0;
    long done = 0, sent = 0;
    char scratch[REQ_MAX];
    double interval = rate_per_conn > 0 ? 1.0 / rate_per_conn : 0.0;
    heap_at = malloc((n + 1) * sizeof *heap_at);
    heap_k = malloc((n + 1) * sizeof *heap_k);
    struct epoll_event *evs = malloc(n * sizeof *evs);
    if (!lat || !heap_at || !heap_k || !evs) die("malloc");

#define SEND(k, at) do {                                                        \
        struct conn *c_ = &cs[k];                                               \
        const char *p_; int len_;                                               \
        if (fresh) { len_ = make(scratch, c_->idx, first + (k)); p_ = scratch; } \
        else { p_ = c_->reqs[c_->idx % PER_CONN]; len_ = c_->lens[c_->idx % PER_CONN]; } \
        c_->sent_at = (at); c_->inflight = 1; c_->idx++; sent++;                \
        if (send(c_->fd, p_, len_, MSG_NOSIGNAL) != len_) die("send");          \
    } while (0)

    double start = now_s(), deadline = start + seconds;
    if (interval) {
        for (int k = 0; k < n; k++) heap_push(start + interval * k / n, k);
    } else {
        double t = now_s();
        for (int k = 0; k < n; k++) SEND(k, t);
    }
    for (;;) {
        double t = now_s();
        if (t >= deadline || (limit && done >= limit)) break;
        double timeout = deadline - t;
        if (interval) {
            while (heap_n && heap_at[0] <= t) {
                double at; int k;
                heap_pop(&at, &k);
                heap_push(at + interval, k);
                if (cs[k].inflight) { if (cs[k].owed < 0) cs[k].owed = at; }
                else SEND(k, at);
            }
            if (heap_n && heap_at[0] - t < timeout) timeout = heap_at[0] - t;
            if (timeout < 0) timeout = 0;
        }
        int ready = epoll_wait(ep, evs, n, (int)(timeout * 1000) + (timeout > 0 && timeout < 0.001));
        if (ready < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int e = 0; e < ready; e++) {
            int k = evs[e].data.u32;
            struct conn *c = &cs[k];
            ssize_t r = recv(c->fd, c->reply + c->got, REPLY_MAX - c->got, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) { fprintf(stderr, "server closed connection %d (after %ld requests)\n", k, c->idx); return 1; }
            c->got += r;
            if (c->got < 2 || c->reply[c->got - 1] != '\n' || c->reply[c->got - 2] != '\n') {
                if (c->got == REPLY_MAX) { fprintf(stderr, "reply too long on connection %d\n", k); return 1; }
                continue;
            }
            double tr = now_s();
            if (lat_n == lat_cap) {
                lat_cap *= 2;
                if (!(lat = realloc(lat, lat_cap * sizeof *lat))) die("realloc");
            }
            lat[lat_n++] = tr - c->sent_at;
            c->inflight = 0;
            done++;
            char word[32] = "?";
            if (c->got > 7 && !memcmp(c->reply, "action=", 7)) {
                size_t w = 0;
                while (7 + w < c->got && w < sizeof word - 1 && c->reply[7 + w] != ' ' && c->reply[7 + w] != '\n') {
                    word[w] = c->reply[7 + w]; w++;
                }
                word[w] = 0;
            }
            c->got = 0;
            int j;
            for (j = 0; j < nwords && strcmp(words[j], word); j++) {}
            if (j == nwords && nwords < WORDS_MAX) { strcpy(words[nwords], word); counts[nwords++] = 0; }
            if (j < nwords) counts[j]++;
            if (interval) {
                if (c->owed >= 0) { double at = c->owed; c->owed = -1; SEND(k, at); }
            } else {
                SEND(k, tr);
            }
        }
    }
    double end = now_s();
    for (int k = 0; k < n; k++) close(cs[k].fd);
    printf("{\"done\": %ld, \"start\": %.9f, \"end\": %.9f, \"words\": {", done, start, end);
    for (int j = 0; j < nwords; j++) printf("%s\"%s\": %ld", j ? ", " : "", words[j], counts[j]);
    printf("}, \"replied\": [");   /* answers each connection got */
    for (int k = 0; k < n; k++) printf(k ? ",%ld" : "%ld", cs[k].idx - cs[k].inflight);
    printf("], \"lat\": [");
    for (size_t i = 0; i < lat_n; i++) printf(i ? ",%.9f" : "%.9f", lat[i]);
    printf("]}\n");
    return 0;
}
