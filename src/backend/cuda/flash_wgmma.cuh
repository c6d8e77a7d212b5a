/* flash_wgmma.cuh: warpgroup matrix products (sm_90a wgmma) for the Hopper prefill attention
 * (flash_prefill.cu). A (64 x 16, the dtype) from registers in the mma.sync m16n8k16 fragment
 * layout (warp w of the warpgroup holds rows 16 w .. 16 w + 15), B from shared memory through a
 * matrix descriptor (128-byte swizzle), D (64 x N float32) accumulated in registers: thread
 * (warp w, lane l) holds d[4 j + e] = row 16 w + l / 4 (+ 8 for e >= 2), column 8 j + 2 (l % 4)
 * + (e & 1). scale_d = 0 overwrites D. "_t": B is MN-major (rows of N contiguous), else
 * K-major; "_ss": A from shared memory too (K-major, a descriptor). Generated code (one wrapper
 * per shape and dtype). Also the warp-specialised kernel's synchronisation: mbarriers (cp.async
 * arrivals, phase-parity waits), named barriers, setmaxnreg. Compiled to nothing outside sm_90a,
 * where the host never launches the kernels that use them. */
#ifndef LLT_BACKEND_CUDA_FLASH_WGMMA_CUH
#define LLT_BACKEND_CUDA_FLASH_WGMMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_ENABLED 1
#else
#define WG_ENABLED 0
#endif

namespace {

__device__ __forceinline__ void wg_fence() {
#if WG_ENABLED
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#if WG_ENABLED
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wg_wait() {
#if WG_ENABLED
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
/* keeps the compiler from moving accesses of an accumulator across the asynchronous products */
__device__ __forceinline__ void wg_reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }
/* shared memory written by the threads (cp.async, stores) -> visible to the async proxy */
__device__ __forceinline__ void wg_fence_proxy() {
#if WG_ENABLED
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/* Descriptor of a 128-byte-swizzled operand at smem address `addr` (atoms of 8 rows x 128 bytes,
 * 1024-byte aligned): lbo / sbo in bytes. */
__device__ __forceinline__ uint64_t wg_desc(unsigned addr, unsigned lbo, unsigned sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           ((uint64_t)1 << 62);
}
/* The descriptor of the operand off bytes (a multiple of 16) past d's: one 32-bit add to the start
 * field, which never carries (shared addresses < 2^18, so the field's 14 bits hold start + off / 16).
 * Made from d once, a loop's descriptors cost one uniform add each where wg_desc(addr + off, ...)
 * took four (mask, shift, or, move). qgemm_kernel: 64 sequences of llama2-7b q8_0 +0.9 %, pp512
 * +1.4 % on the H100; the warp-specialised prefill kernel at hd 64 ran 9 % slower with it at depth
 * 16384 and keeps wg_desc (bench/RESULTS.md, issue 20). */
__device__ __forceinline__ uint64_t wg_desc_at(uint64_t d, unsigned off) {
    return (d & 0xFFFFFFFF00000000ull) | (uint32_t)((uint32_t)d + (off >> 4));
}

__device__ __forceinline__ void wg_mma_n64_f16(float (&d)[32], const unsigned (&a)[4], uint64_t desc,
                                               int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wg_mma_n64_f16_t(float (&d)[32], const unsigned (&a)[4], uint64_t desc,
                                                 int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wg_mma_n64_bf16(float (&d)[32], const unsigned (&a)[4], uint64_t desc,
                                                int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wg_mma_n64_bf16_t(float (&d)[32], const unsigned (&a)[4], uint64_t desc,
                                                  int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}
/* m64n8k16, B K-major: the row sums of P against a shared-memory tile of ones (fa_ws_kernel, RS) */
#define WG_MMA_N8(NAME, TY)                                                                              \
    __device__ __forceinline__ void NAME(float (&d)[4], const unsigned (&a)[4], uint64_t desc) {         \
        asm volatile("{\n.reg .pred p;\nsetp.eq.u32 p, 1, 1;\n"                                          \
                     "wgmma.mma_async.sync.aligned.m64n8k16.f32." TY "." TY " {%0, %1, %2, %3}, "        \
                     "{%4, %5, %6, %7}, %8, p, 1, 1, 0;\n}\n"                                          \
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                    \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));                           \
    }
#if WG_ENABLED
WG_MMA_N8(wg_mma_n8_f16, "f16")
WG_MMA_N8(wg_mma_n8_bf16, "bf16")
#else
__device__ __forceinline__ void wg_mma_n8_f16(float (&)[4], const unsigned (&)[4], uint64_t) {}
__device__ __forceinline__ void wg_mma_n8_bf16(float (&)[4], const unsigned (&)[4], uint64_t) {}
#endif
#undef WG_MMA_N8
/* The 64 float accumulators of an m64n128 product: their placeholders %0..%63 in the asm text and
 * their "+f" operands (the same in every n128 wrapper below; only the types and A differ). */
#define WG_D64_REGS                                                                                     \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                           \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                  \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                  \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define WG_D64_OUT                                                                                      \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),     \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),        \
        "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),      \
        "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),      \
        "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),      \
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),      \
        "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),      \
        "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),      \
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
__device__ __forceinline__ void wg_mma_n128_f16(float (&d)[64], const unsigned (&a)[4], uint64_t desc,
                                                int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
                 WG_D64_REGS "}, "
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : WG_D64_OUT
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wg_mma_n128_bf16(float (&d)[64], const unsigned (&a)[4], uint64_t desc,
                                                 int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 WG_D64_REGS "}, "
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : WG_D64_OUT
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
}

/* A from shared memory too (K-major, through a descriptor): S = Q K^T with Q staged in shared memory. */
__device__ __forceinline__ void wg_mma_ss_n128_f16(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
                 WG_D64_REGS "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : WG_D64_OUT
                 : "l"(da), "l"(db), "r"(scale_d));
#endif
}
__device__ __forceinline__ void wg_mma_ss_n128_bf16(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 WG_D64_REGS "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : WG_D64_OUT
                 : "l"(da), "l"(db), "r"(scale_d));
#endif
}

/* ---- warp-specialised pipelines: mbarriers, named barriers, register hand-over ---------------- */

/* An mbarrier in shared memory: `count` arrivals complete a phase; waiters poll a phase parity. */
__device__ __forceinline__ void mb_init(uint64_t *b, unsigned count) {
#if WG_ENABLED
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(b)), "r"(count)
                 : "memory");
#endif
}
__device__ __forceinline__ void mb_arrive(uint64_t *b) {
#if WG_ENABLED
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(b))
                 : "memory");
#endif
}
/* returns once the phase of parity `parity` has completed (a fresh barrier: parity 1 at once) */
__device__ __forceinline__ void mb_wait(uint64_t *b, unsigned parity) {
#if WG_ENABLED
    asm volatile("{\n.reg .pred P1;\nMB_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
                 "@P1 bra MB_DONE;\nbra MB_WAIT;\nMB_DONE:\n}\n" ::"r"((unsigned)__cvta_generic_to_shared(b)),
                 "r"(parity)
                 : "memory");
#endif
}
/* one arrival on b once every cp.async this thread issued so far has landed (counted in the
 * barrier's init count: .noinc) */
__device__ __forceinline__ void mb_cp_async_arrive(uint64_t *b) {
#if WG_ENABLED
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(b))
                 : "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#if WG_ENABLED
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}
/* named barriers: `n` threads in all, some arrive (no wait), the others sync */
__device__ __forceinline__ void nb_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void nb_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* a warpgroup's registers per thread (sm_90a; the kernel needs a register cap at entry) */
template <int N> __device__ __forceinline__ void wg_regs_dec() {
#if WG_ENABLED
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N> __device__ __forceinline__ void wg_regs_inc() {
#if WG_ENABLED
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}


} // namespace

#endif
