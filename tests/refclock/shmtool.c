/*
 * shmtool: the C side of tests/refclock.rs. Built by the test with the system's C compiler,
 * so struct shmTime below is laid out exactly as ntpd, chrony and gpsd see it.
 *
 *   shmtool layout                 print sizeof and every field's offsetof
 *   shmtool create UNIT SIZE PERM  create unit UNIT's segment with SIZE bytes, octal PERM
 *   shmtool write UNIT             write one sample as gpsd does (another writer)
 *   shmtool mark UNIT PID          mark the unit as held by webntpd process PID (the
 *                                  writer mark in dummy[0..2], see Mark in src/refclock/shm.rs)
 *   shmtool show UNIT              print the segment's id, size and fields:
 *                                  `id I size S mode M count C valid V receive SEC.NSEC
 *                                  clock SEC.NSEC leap L precision P mark HEX holder PID`
 *   shmtool replace UNIT SIZE PERM remove unit UNIT's segment and create a new one at once,
 *                                  as a restarting reader does; print the new id
 *   shmtool stress UNIT READS MIN BASE
 *                                  read at least READS times, alternating chrony's and
 *                                  ntpd's protocol (as in their refclock_shm.c), and on
 *                                  until each protocol accepted MIN samples (for at most
 *                                  30 s); check every accepted sample (see below); print
 *                                  counts of accepted, clashing (count moved), busy (mode
 *                                  not 0/1) and empty reads, and of mixed samples seen by
 *                                  a reader with no protocol at all
 *
 * The stress writer (the test, through webntpd's ShmWriter) writes sample i with
 *   receive = BASE + i seconds + (i * 999983 mod 10^9) ns
 *   offset  = (i * 7919 mod 2*10^9) - 10^9 ns,  clock = receive + offset
 *   leap    = i mod 3,  precision = -1 - (i mod 29)
 * so every field of an accepted sample can be checked against the index its receive
 * seconds give: a copy mixing two samples (a torn read) does not add up.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>

struct shmTime {
    int mode;
    volatile int count;
    time_t clockTimeStampSec;
    int clockTimeStampUSec;
    time_t receiveTimeStampSec;
    int receiveTimeStampUSec;
    int leap;
    int precision;
    int nsamples;
    volatile int valid;
    unsigned clockTimeStampNSec;
    unsigned receiveTimeStampNSec;
    int dummy[8];
};

#define KEY(unit) (0x4E545030 + (unit))
#define MARK_HELD 0x574E5448 /* "WNTH" */

static struct shmTime *attach(int unit) {
    int id = shmget(KEY(unit), sizeof(struct shmTime), 0);
    if (id < 0) {
        fprintf(stderr, "shmtool: shmget unit %d: %s\n", unit, strerror(errno));
        exit(2);
    }
    void *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        fprintf(stderr, "shmtool: shmat unit %d: %s\n", unit, strerror(errno));
        exit(2);
    }
    return p;
}

static void layout(void) {
    printf("sizeof %zu\n", sizeof(struct shmTime));
#define F(name) printf("%s %zu\n", #name, offsetof(struct shmTime, name))
    F(mode); F(count); F(clockTimeStampSec); F(clockTimeStampUSec);
    F(receiveTimeStampSec); F(receiveTimeStampUSec); F(leap); F(precision);
    F(nsamples); F(valid); F(clockTimeStampNSec); F(receiveTimeStampNSec); F(dummy);
#undef F
}

static int create(int unit, size_t size, int perm) {
    int id = shmget(KEY(unit), size, IPC_CREAT | IPC_EXCL | perm);
    if (id < 0) {
        fprintf(stderr, "shmtool: create unit %d: %s\n", unit, strerror(errno));
        return 2;
    }
    printf("%d\n", id);
    return 0;
}

/* gpsd's ntpshm_put: another program writing the unit, now, with a 1 ms offset. */
static int write_one(int unit) {
    struct shmTime *shm = attach(unit);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    shm->mode = 1;
    shm->valid = 0;
    shm->count++;
    atomic_thread_fence(memory_order_seq_cst);
    shm->clockTimeStampSec = now.tv_sec;
    shm->clockTimeStampNSec = 1000000;
    shm->clockTimeStampUSec = 1000;
    shm->receiveTimeStampSec = now.tv_sec;
    shm->receiveTimeStampNSec = 0;
    shm->receiveTimeStampUSec = 0;
    shm->leap = 0;
    shm->precision = -10;
    atomic_thread_fence(memory_order_seq_cst);
    shm->count++;
    shm->valid = 1;
    shmdt(shm);
    return 0;
}

/* The fields of an accepted copy, as the readers take them. */
struct got {
    long long rsec, csec;
    int rusec, cusec, leap, precision;
    unsigned rnsec, cnsec;
};

static struct got fields(const struct shmTime *t) {
    struct got g = {t->receiveTimeStampSec, t->clockTimeStampSec, t->receiveTimeStampUSec,
                    t->clockTimeStampUSec, t->leap, t->precision, t->receiveTimeStampNSec,
                    t->clockTimeStampNSec};
    return g;
}

/* Results of one read. */
enum { EMPTY, ACCEPTED, CLASH, BAD_MODE };

/* chrony's shm_poll: copy, then drop the copy if !valid, the mode is not 0/1, or count
 * moved during it. */
static int read_chrony(struct shmTime *shm, struct got *g) {
    struct shmTime t = *shm;
    if ((t.mode == 1 && t.count != shm->count) || !(t.mode == 0 || t.mode == 1) || !t.valid) {
        if (!t.valid)
            return EMPTY;
        return (t.mode == 0 || t.mode == 1) ? CLASH : BAD_MODE;
    }
    shm->valid = 0;
    *g = fields(&t);
    return ACCEPTED;
}

/* ntpd/ntpsec's shm_query: valid?, count, fence, copy, clear valid, fence, count again;
 * then a copy whose mode is not 0/1 is a "bad mode". */
static int read_ntpd(volatile struct shmTime *shm, struct got *g) {
    struct shmTime t;
    if (shm->valid == 0)
        return EMPTY;
    int cnt = shm->count;
    atomic_thread_fence(memory_order_seq_cst);
    memcpy(&t, (void *)shm, sizeof t);
    shm->valid = 0;
    atomic_thread_fence(memory_order_seq_cst);
    if (t.mode > 0 && cnt != shm->count)
        return CLASH;
    if (t.mode != 0 && t.mode != 1)
        return BAD_MODE;
    *g = fields(&t);
    return ACCEPTED;
}

/* What sample i holds, by the rule in the header comment. */
static struct got expected(long long base, long long i) {
    const long long G = 1000000000LL;
    long long rns = (i * 999983LL) % G;
    long long off = (i * 7919LL) % (2 * G) - G;
    long long r = (base + i) * G + rns, c = r + off;
    long long csec = c / G, cns = c % G;
    if (cns < 0) {
        cns += G;
        csec -= 1;
    }
    struct got g = {base + i, csec, (int)(rns / 1000), (int)(cns / 1000), (int)(i % 3),
                    (int)(-1 - i % 29), (unsigned)rns, (unsigned)cns};
    return g;
}

static int consistent(const struct got *g, long long base) {
    long long i = g->rsec - base;
    if (i < 0)
        return 0;
    struct got e = expected(base, i);
    return g->rsec == e.rsec && g->csec == e.csec && g->rusec == e.rusec &&
           g->cusec == e.cusec && g->leap == e.leap && g->precision == e.precision &&
           g->rnsec == e.rnsec && g->cnsec == e.cnsec;
}

static int mark(int unit, int pid) {
    struct shmTime *shm = attach(unit);
    shm->dummy[0] = MARK_HELD;
    shm->dummy[1] = pid;
    shmdt(shm);
    return 0;
}

static int show(int unit) {
    int id = shmget(KEY(unit), 0, 0);
    struct shmid_ds ds;
    if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0) {
        fprintf(stderr, "shmtool: unit %d: %s\n", unit, strerror(errno));
        return 2;
    }
    if (ds.shm_segsz < sizeof(struct shmTime)) {
        printf("id %d size %zu\n", id, (size_t)ds.shm_segsz);
        return 0;
    }
    struct shmTime *shm = shmat(id, NULL, SHM_RDONLY);
    if (shm == (void *)-1) {
        fprintf(stderr, "shmtool: shmat unit %d: %s\n", unit, strerror(errno));
        return 2;
    }
    struct shmTime t = *shm;
    printf("id %d size %zu mode %d count %d valid %d receive %lld.%09u clock %lld.%09u leap %d "
           "precision %d mark %x holder %d created %x attached %lu\n",
           id, (size_t)ds.shm_segsz, t.mode, t.count, t.valid, (long long)t.receiveTimeStampSec,
           t.receiveTimeStampNSec, (long long)t.clockTimeStampSec, t.clockTimeStampNSec, t.leap,
           t.precision, (unsigned)t.dummy[0], t.dummy[1], (unsigned)t.dummy[2],
           (unsigned long)ds.shm_nattch);
    shmdt(shm);
    return 0;
}

/* A writer may create the segment again between the removal and the creation: remove
 * that one too, a few times. */
static int replace(int unit, size_t size, int perm) {
    for (int i = 0; i < 10; i++) {
        int old = shmget(KEY(unit), 0, 0);
        if (old >= 0 && shmctl(old, IPC_RMID, NULL) < 0) {
            fprintf(stderr, "shmtool: remove unit %d: %s\n", unit, strerror(errno));
            return 2;
        }
        int id = shmget(KEY(unit), size, IPC_CREAT | IPC_EXCL | perm);
        if (id >= 0) {
            printf("%d\n", id);
            return 0;
        }
        if (errno != EEXIST) {
            fprintf(stderr, "shmtool: create unit %d: %s\n", unit, strerror(errno));
            return 2;
        }
    }
    fprintf(stderr, "shmtool: unit %d kept being created again\n", unit);
    return 2;
}

static int stress(int unit, long long reads, long long min, long long base) {
    struct shmTime *shm = attach(unit);
    long long accepted[2] = {0, 0}, clashes = 0, busy = 0, empty = 0, torn = 0, naive_torn = 0;
    time_t give_up = time(NULL) + 30;
    long long n;
    for (n = 0; n < reads || accepted[0] < min || accepted[1] < min; n++) {
        if ((n & 0xffff) == 0 && time(NULL) > give_up)
            break;
        struct got g;
        int proto = n & 1;
        int r = proto ? read_ntpd(shm, &g) : read_chrony(shm, &g);
        if (r == ACCEPTED) {
            accepted[proto]++;
            if (!consistent(&g, base)) {
                torn++;
                fprintf(stderr, "torn sample accepted by %s: rsec %lld rnsec %u csec %lld cnsec %u leap %d prec %d\n",
                        proto ? "ntpd" : "chrony", g.rsec, g.rnsec, g.csec, g.cnsec, g.leap, g.precision);
            }
        } else if (r == CLASH) {
            clashes++;
        } else if (r == BAD_MODE) {
            busy++;
        } else {
            empty++;
        }
        /* A reader with no protocol at all, to show tearing happens without one. */
        if ((n & 15) == 0) {
            struct shmTime t;
            memcpy(&t, (void *)shm, sizeof t);
            struct got raw = fields(&t);
            if (t.count != 0 && raw.rsec >= base && !consistent(&raw, base))
                naive_torn++;
        }
    }
    printf("reads %lld chrony %lld ntpd %lld clashes %lld busy %lld empty %lld torn %lld "
           "naive_torn %lld\n",
           n, accepted[0], accepted[1], clashes, busy, empty, torn, naive_torn);
    shmdt(shm);
    return torn ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "layout")) {
        layout();
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "create"))
        return create(atoi(argv[2]), strtoul(argv[3], NULL, 10), (int)strtol(argv[4], NULL, 8));
    if (argc == 3 && !strcmp(argv[1], "write"))
        return write_one(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "mark"))
        return mark(atoi(argv[2]), atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "show"))
        return show(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "replace"))
        return replace(atoi(argv[2]), strtoul(argv[3], NULL, 10), (int)strtol(argv[4], NULL, 8));
    if (argc == 6 && !strcmp(argv[1], "stress"))
        return stress(atoi(argv[2]), atoll(argv[3]), atoll(argv[4]), atoll(argv[5]));
    fprintf(stderr, "usage: shmtool layout | create UNIT SIZE PERM | write UNIT | "
                    "mark UNIT PID | show UNIT | replace UNIT SIZE PERM | "
                    "stress UNIT READS MIN BASE\n");
    return 64;
}
