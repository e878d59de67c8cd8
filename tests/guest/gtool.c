/* gtool: guest-side helper of the stillpoint test guest.
 *
 * Built statically on the host and put into the tiny guest's initramfs as
 * /bin/gtool. It exists because busybox sh cannot do binary I/O on one
 * TPM descriptor (a TPM command must be written with one write() and its
 * response read back from the same descriptor), nor write an EFI variable
 * (4 attribute bytes + data) in one write() after clearing the immutable flag.
 *
 *   gtool nv-define IDX                define an NV counter (idempotent)
 *   gtool nv-inc IDX                   TPM2_NV_Increment, prints the new value
 *   gtool nv-read IDX                  prints the counter as a decimal number
 *   gtool efivar-write NAME GUID DEC   EFI variable = DEC as 8 bytes LE
 *   gtool efivar-read NAME GUID        prints it as a decimal number
 *   gtool loop FILE IDX NAME GUID      the consistency workload, see cmd_loop
 *
 * Exit status 0 on success, 1 on any failure with a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The kernel's resource manager device: /dev/tpm0 admits one opener at a
 * time (EBUSY while the loop runs), /dev/tpmrm0 any number, each command
 * still sent and answered as one unit on one descriptor. */
#define TPM_DEV "/dev/tpmrm0"
#define TPM_DEV_RAW "/dev/tpm0"
#define EFIVARS "/sys/firmware/efi/efivars"
#define PROGRESS "/tmp/gtool-loop.progress"

/* TPM 2.0 constants (TPM 2.0 Library, Part 2). */
#define TPM_ST_NO_SESSIONS 0x8001
#define TPM_ST_SESSIONS 0x8002
#define TPM_CC_NV_DefineSpace 0x012A
#define TPM_CC_NV_Increment 0x0134
#define TPM_CC_NV_Read 0x014E
#define TPM_CC_NV_ReadPublic 0x0169
#define TPM_RH_OWNER 0x40000001u
#define TPM_RS_PW 0x40000009u
#define TPM_ALG_SHA256 0x000B
#define TPM_RC_NV_UNINITIALIZED 0x014A
#define TPM_RC_NV_DEFINED 0x014C

/* TPMA_NV bits */
#define TPMA_NV_OWNERWRITE (1u << 1)
#define TPMA_NV_AUTHWRITE (1u << 2)
#define TPMA_NV_TPM_NT_COUNTER (1u << 4) /* TPM_NT field (bits 7:4) = 1 */
#define TPMA_NV_TPM_NT_MASK (0xFu << 4)
#define TPMA_NV_OWNERREAD (1u << 17)
#define TPMA_NV_AUTHREAD (1u << 18)
#define TPMA_NV_NO_DA (1u << 25)

/* NO_DA: reads with the empty password must never count towards dictionary
 * attack lockout, so the host can read a copy of the state at any time. */
#define COUNTER_ATTRS                                                         \
    (TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_TPM_NT_COUNTER |      \
     TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA)

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gtool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- TPM command buffer ------------------------------------------------ */

struct buf {
    uint8_t b[1024];
    size_t n;
};

static void put8(struct buf *c, uint8_t v) { c->b[c->n++] = v; }
static void put16(struct buf *c, uint16_t v) { put8(c, v >> 8); put8(c, v & 0xff); }
static void put32(struct buf *c, uint32_t v) { put16(c, v >> 16); put16(c, v & 0xffff); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void cmd_begin(struct buf *c, uint16_t tag, uint32_t cc)
{
    c->n = 0;
    put16(c, tag);
    put32(c, 0); /* size, patched by tpm_xfer: it counts the 10-byte header too */
    put32(c, cc);
}

/* Password session with the empty password: authorizes owner hierarchy
 * commands (empty owner auth on a fresh TPM) and the index's own auth. */
static void put_pw_session(struct buf *c)
{
    put32(c, 9);         /* authorizationSize */
    put32(c, TPM_RS_PW); /* sessionHandle */
    put16(c, 0);         /* nonce: empty */
    put8(c, 0);          /* sessionAttributes */
    put16(c, 0);         /* hmac = password: empty */
}

static int tpm_fd = -1;

/* Sends the command in c, leaves the response in r, returns the TPM rc. */
static uint32_t tpm_xfer(struct buf *c, struct buf *r)
{
    if (tpm_fd < 0 && (tpm_fd = open(TPM_DEV, O_RDWR)) < 0 &&
        (errno != ENOENT || (tpm_fd = open(TPM_DEV_RAW, O_RDWR)) < 0))
        die("open %s or %s: %s", TPM_DEV, TPM_DEV_RAW, strerror(errno));
    c->b[2] = c->n >> 24; c->b[3] = c->n >> 16; c->b[4] = c->n >> 8; c->b[5] = c->n;
    ssize_t w = write(tpm_fd, c->b, c->n);
    if (w != (ssize_t)c->n)
        die("write TPM: %s", w < 0 ? strerror(errno) : "short write");
    ssize_t rd = read(tpm_fd, r->b, sizeof r->b);
    if (rd < 10)
        die("read TPM: %s", rd < 0 ? strerror(errno) : "short response");
    r->n = (size_t)rd;
    if (get32(r->b + 2) != r->n)
        die("TPM response size %u but read %zd bytes", get32(r->b + 2), rd);
    return get32(r->b + 6);
}

/* TPM2_NV_ReadPublic: returns 0 and the attributes, or the TPM rc. */
static uint32_t nv_read_public(uint32_t idx, uint32_t *attrs)
{
    struct buf c, r;
    cmd_begin(&c, TPM_ST_NO_SESSIONS, TPM_CC_NV_ReadPublic);
    put32(&c, idx);
    uint32_t rc = tpm_xfer(&c, &r);
    /* header(10) size(2) nvIndex(4) nameAlg(2) attributes(4) */
    if (rc == 0) {
        if (r.n < 22)
            die("NV_ReadPublic response too short");
        *attrs = get32(r.b + 18);
    }
    return rc;
}

static void nv_define(uint32_t idx)
{
    struct buf c, r;
    cmd_begin(&c, TPM_ST_SESSIONS, TPM_CC_NV_DefineSpace);
    put32(&c, TPM_RH_OWNER);
    put_pw_session(&c);
    put16(&c, 0);  /* auth: empty */
    put16(&c, 14); /* TPM2B_NV_PUBLIC size: 4+2+4+2+2 */
    put32(&c, idx);
    put16(&c, TPM_ALG_SHA256);
    put32(&c, COUNTER_ATTRS);
    put16(&c, 0); /* authPolicy: empty */
    put16(&c, 8); /* dataSize: a counter is 8 bytes */
    uint32_t rc = tpm_xfer(&c, &r);
    if (rc == TPM_RC_NV_DEFINED) {
        /* Idempotent, but only if what is there is a counter we can use. */
        uint32_t attrs;
        if ((rc = nv_read_public(idx, &attrs)) != 0)
            die("NV_ReadPublic 0x%08x: rc 0x%03x", idx, rc);
        if ((attrs & TPMA_NV_TPM_NT_MASK) != TPMA_NV_TPM_NT_COUNTER)
            die("NV index 0x%08x exists and is not a counter (attributes 0x%08x)", idx, attrs);
        return;
    }
    if (rc != 0)
        die("NV_DefineSpace 0x%08x: rc 0x%03x", idx, rc);
}

static void nv_increment(uint32_t idx)
{
    struct buf c, r;
    cmd_begin(&c, TPM_ST_SESSIONS, TPM_CC_NV_Increment);
    put32(&c, idx); /* authHandle: the index itself (AUTHWRITE, empty auth) */
    put32(&c, idx);
    put_pw_session(&c);
    uint32_t rc = tpm_xfer(&c, &r);
    if (rc != 0)
        die("NV_Increment 0x%08x: rc 0x%03x", idx, rc);
}

/* Returns 0 and the value, or TPM_RC_NV_UNINITIALIZED for a counter never
 * incremented; dies on any other error. */
static uint32_t nv_read_counter(uint32_t idx, uint64_t *value)
{
    struct buf c, r;
    cmd_begin(&c, TPM_ST_SESSIONS, TPM_CC_NV_Read);
    put32(&c, idx);
    put32(&c, idx);
    put_pw_session(&c);
    put16(&c, 8); /* size */
    put16(&c, 0); /* offset */
    uint32_t rc = tpm_xfer(&c, &r);
    if (rc == TPM_RC_NV_UNINITIALIZED)
        return rc;
    if (rc != 0)
        die("NV_Read 0x%08x: rc 0x%03x", idx, rc);
    /* header(10) parameterSize(4) TPM2B size(2) data(8) */
    if (r.n < 24 || get16(r.b + 14) != 8)
        die("NV_Read 0x%08x: unexpected response", idx);
    *value = (uint64_t)get32(r.b + 16) << 32 | get32(r.b + 20);
    return 0;
}

/* ---- EFI variables ----------------------------------------------------- */

static void efivar_path(char *out, size_t n, const char *name, const char *guid)
{
    if ((size_t)snprintf(out, n, "%s/%s-%s", EFIVARS, name, guid) >= n)
        die("EFI variable name too long");
}

/* efivarfs marks each variable file immutable; writing to an existing one
 * needs the flag cleared first (what `chattr -i` does). */
static void clear_immutable(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        die("open %s: %s", path, strerror(errno));
    }
    int flags;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
        die("FS_IOC_GETFLAGS %s: %s", path, strerror(errno));
    if (flags & FS_IMMUTABLE_FL) {
        flags &= ~FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
            die("FS_IOC_SETFLAGS %s: %s", path, strerror(errno));
    }
    close(fd);
}

static void efivar_write(const char *name, const char *guid, uint64_t v)
{
    char path[512];
    efivar_path(path, sizeof path, name, guid);
    clear_immutable(path);
    /* One write(): efivarfs turns each write into one SetVariable call,
     * attributes first (NV|BS|RT = 7), then the data. */
    uint8_t rec[12] = {7, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        rec[4 + i] = (uint8_t)(v >> (8 * i));
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    ssize_t w = write(fd, rec, sizeof rec);
    if (w < 0 && errno == ENOSPC)
        /* Measured: OVMF never reclaims deleted variables at runtime, so
         * its 256 KiB store takes ~2,800 writes of one variable; the next
         * boot finds it nearly full and reclaims. */
        die("write %s: variable store full; OVMF reclaims space only at boot: "
            "restart the guest", path);
    if (w != (ssize_t)sizeof rec)
        die("write %s: %s", path, w < 0 ? strerror(errno) : "short write");
    if (close(fd) < 0)
        die("close %s: %s", path, strerror(errno));
}

static uint64_t efivar_read(const char *name, const char *guid)
{
    char path[512];
    efivar_path(path, sizeof path, name, guid);
    uint8_t rec[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    ssize_t rd = read(fd, rec, sizeof rec);
    close(fd);
    if (rd != 12)
        die("%s: expected 4 attribute bytes + 8 data bytes, got %zd bytes", path, rd);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | rec[4 + i];
    return v;
}

/* ---- the workload ------------------------------------------------------ */

/* The data file always holds one decimal number: pwrite at offset 0 of a
 * fixed-width, zero-padded 20-digit field + newline, then fsync. The file's
 * size never changes after the first write, so each step is one in-place
 * block overwrite (no truncate/extent churn) and a torn read is impossible:
 * fsync returns only when the block reached the disk. */
static void write_number(int fd, const char *file, uint64_t n)
{
    char text[32];
    int len = snprintf(text, sizeof text, "%020" PRIu64 "\n", n);
    if (pwrite(fd, text, (size_t)len, 0) != len)
        die("pwrite %s: %s", file, strerror(errno));
    if (fsync(fd) < 0)
        die("fsync %s: %s", file, strerror(errno));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* For N = base+1, base+2, ...: data file := N (fsync), TPM counter += 1
 * (so it becomes N), EFI variable := N. Runs until killed.
 *
 * A TPM counter is not reset by undefine/define: the first NV_Increment of a
 * never-written counter sets it to the highest value any counter of this TPM
 * has had, plus one. So the loop primes an unwritten counter with one
 * increment and continues from whatever the counter holds; from then on all
 * three stores carry the same number and a consistent snapshot satisfies
 *   disk >= tpm >= efi >= disk - 1  (write order: disk, tpm, efi).
 * The base is printed on stdout and every 100 iterations the last N and the
 * rate go to /tmp/gtool-loop.progress.
 *
 * Each EFI variable write appends a record to OVMF's variable store, which
 * reclaims deleted records only at boot: after ~2,800 iterations (about a
 * minute here) the write fails with ENOSPC and the loop exits 1 saying so.
 * A restart of the VM (destroy + start) reclaims the store. */
static _Noreturn void cmd_loop(const char *file, uint32_t idx, const char *name, const char *guid)
{
    nv_define(idx);
    uint64_t base;
    if (nv_read_counter(idx, &base) == TPM_RC_NV_UNINITIALIZED) {
        nv_increment(idx);
        if (nv_read_counter(idx, &base) != 0)
            die("counter 0x%08x still uninitialized after an increment", idx);
    }
    printf("base %" PRIu64 "\n", base);
    fflush(stdout);

    int fd = open(file, O_WRONLY | O_CREAT, 0644);
    if (fd < 0)
        die("open %s: %s", file, strerror(errno));
    double t0 = now();
    for (uint64_t n = base + 1;; n++) {
        write_number(fd, file, n);
        nv_increment(idx);
        efivar_write(name, guid, n);
        if ((n - base) % 100 == 0) {
            FILE *p = fopen(PROGRESS ".tmp", "w");
            if (p) {
                fprintf(p, "base %" PRIu64 " n %" PRIu64 " rate %.1f\n", base, n,
                        (double)(n - base) / (now() - t0));
                fclose(p);
                rename(PROGRESS ".tmp", PROGRESS);
            }
        }
    }
}

/* ---- command line ------------------------------------------------------ */

static uint32_t parse_idx(const char *s)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    /* NV indexes live in the 0x01xxxxxx handle range. */
    if (errno || *end || (v >> 24) != 0x01)
        die("bad NV index '%s' (want e.g. 0x01500010)", s);
    return (uint32_t)v;
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s)
        die("bad number '%s'", s);
    return v;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "nv-define") && argc == 3) {
        nv_define(parse_idx(argv[2]));
    } else if (!strcmp(cmd, "nv-inc") && argc == 3) {
        uint32_t idx = parse_idx(argv[2]);
        uint64_t v;
        nv_increment(idx);
        if (nv_read_counter(idx, &v) != 0)
            die("counter 0x%08x uninitialized after an increment", idx);
        printf("%" PRIu64 "\n", v);
    } else if (!strcmp(cmd, "nv-read") && argc == 3) {
        uint32_t idx = parse_idx(argv[2]);
        uint64_t v;
        if (nv_read_counter(idx, &v) != 0)
            die("counter 0x%08x was never incremented", idx);
        printf("%" PRIu64 "\n", v);
    } else if (!strcmp(cmd, "efivar-write") && argc == 5) {
        efivar_write(argv[2], argv[3], parse_u64(argv[4]));
    } else if (!strcmp(cmd, "efivar-read") && argc == 4) {
        printf("%" PRIu64 "\n", efivar_read(argv[2], argv[3]));
    } else if (!strcmp(cmd, "loop") && argc == 6) {
        cmd_loop(argv[2], parse_idx(argv[3]), argv[4], argv[5]);
    } else {
        fprintf(stderr,
                "usage: gtool nv-define|nv-inc|nv-read IDX\n"
                "       gtool efivar-write NAME GUID DECIMAL\n"
                "       gtool efivar-read NAME GUID\n"
                "       gtool loop FILE IDX NAME GUID\n");
        return 1;
    }
    return 0;
}
