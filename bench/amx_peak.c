/* amx_peak.c — measured Intel AMX peak of this machine (bf16 and int8 tile multiplies), 1 thread.
 *
 * Why: issue 4's targets are fractions of the AMX peak; the brief's 3.2 TFLOP/s / 6.4 TOP/s were measured
 * on one machine, and a VM may run at another clock. Four independent accumulator tiles (C0..C3) are each
 * updated from two A and two B tiles that never change, so the loop runs at the tile unit's throughput
 * (one 16x16x32 bf16 or 16x16x64 int8 product per instruction). Prints "AMX,bf16,<GFLOP/s>" and
 * "AMX,int8,<GOP/s>", or "AMX,none" where the CPU lacks AMX or the OS refuses the tile state.
 * Build: gcc -O2 -mamx-tile -mamx-bf16 -mamx-int8 amx_peak.c -o amx_peak
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cpuid.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define ITERS 2000000L

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int has_amx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    /* EDX bit 22: AMX-BF16, 24: AMX-TILE, 25: AMX-INT8 */
    return (d >> 22 & 1) && (d >> 24 & 1) && (d >> 25 & 1);
}

struct tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static uint8_t data[2][16 * 64] __attribute__((aligned(64)));

#define RUN(OP, NAME, OPS_PER)                                                                   \
    do {                                                                                         \
        double best = 0;                                                                         \
        for (int rep = 0; rep < 5; ++rep) {                                                      \
            _tile_zero(0);                                                                       \
            _tile_zero(1);                                                                       \
            _tile_zero(2);                                                                       \
            _tile_zero(3);                                                                       \
            _tile_loadd(4, data[0], 64);                                                         \
            _tile_loadd(5, data[1], 64);                                                         \
            _tile_loadd(6, data[0], 64);                                                         \
            _tile_loadd(7, data[1], 64);                                                         \
            double t0 = now_s();                                                                 \
            for (long i = 0; i < ITERS; ++i) {                                                   \
                OP(0, 4, 6);                                                                     \
                OP(1, 4, 7);                                                                     \
                OP(2, 5, 6);                                                                     \
                OP(3, 5, 7);                                                                     \
            }                                                                                    \
            double s = now_s() - t0, rate = 4.0 * ITERS * (OPS_PER) / s / 1e9;                   \
            if (rate > best) best = rate;                                                        \
        }                                                                                        \
        static uint8_t sink[16 * 64] __attribute__((aligned(64)));                               \
        _tile_stored(0, sink, 64);                                                               \
        printf("AMX,%s,%.0f\n", NAME, best);                                                     \
    } while (0)

int main(void) {
    if (!has_amx() || syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        puts("AMX,none");
        return 0;
    }
    struct tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    memset(data, 0, sizeof data); /* zero operands: no denormal or overflow effects on the timing */
    RUN(_tile_dpbf16ps, "bf16", 16.0 * 16 * 32 * 2);
    RUN(_tile_dpbssd, "int8", 16.0 * 16 * 64 * 2);
    _tile_release();
    return 0;
}
