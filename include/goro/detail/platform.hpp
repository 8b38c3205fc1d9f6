// goro/detail/platform.hpp: the few operating-system facts the runtime needs (futex, pages,
// environment knobs, fatal errors), so that the rest of detail/ reads as portable C++.
#pragma once

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#endif

#ifndef GORO_TSAN
#define GORO_TSAN 0
#endif
#ifndef GORO_ASAN
#define GORO_ASAN 0
#endif

#define GORO_NOINLINE __attribute__((noinline))
#define GORO_LIKELY(x) __builtin_expect(!!(x), 1)
#define GORO_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace goro::detail {

using Clock = std::chrono::steady_clock;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

inline std::size_t page_size() noexcept {
    static const std::size_t p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return p;
}

// ---- the race detector's view of the runtime ----
//
// Go's race detector does not instrument the runtime: a goroutine switch, a run queue, the
// scheduler's lock create no happens-before edges, and the synchronisation the language
// promises (a send before the matching receive completes, an Unlock before the next Lock, a
// go statement before the goroutine starts) is announced explicitly. goro does the same under
// ThreadSanitizer: fiber switches do not synchronise (__tsan_switch_to_fiber_no_sync), the
// runtime's own code runs in a RuntimeSection, whose memory accesses and synchronisation TSan
// ignores (the scheduling loop on g0 always does), and hb_release / hb_acquire announce the
// edges: channels (channel.hpp, chan.hpp), the semaphore under sync.hpp (sema.hpp), go and
// blocking (go.hpp, sched.hpp). Two goroutines that merely take turns on one worker are then
// unordered, as they are in Go, and a race between them is reported.
#if GORO_TSAN
extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
}
inline void runtime_enter() noexcept {
    __tsan_ignore_thread_begin();
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
inline void runtime_leave() noexcept {
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
    __tsan_ignore_thread_end();
}
inline void hb_release(const void* addr) noexcept { __tsan_release(const_cast<void*>(addr)); }
inline void hb_acquire(const void* addr) noexcept { __tsan_acquire(const_cast<void*>(addr)); }
#else
inline void runtime_enter() noexcept {}
inline void runtime_leave() noexcept {}
inline void hb_release(const void*) noexcept {}
inline void hb_acquire(const void*) noexcept {}
#endif

struct RuntimeSection {
    RuntimeSection() noexcept { runtime_enter(); }
    ~RuntimeSection() { runtime_leave(); }
    RuntimeSection(const RuntimeSection&) = delete;
    RuntimeSection& operator=(const RuntimeSection&) = delete;
};

// release_to() and acquire_from() announce an edge from inside one RuntimeSection (or SyncOp),
// not nested in another: TSan's ignore counters nest, and only the outermost leave lifts them.
// A channel or semaphore operation wakes a waiter with wake_parker (release_to, then ready),
// and a waiter that parked acquires from its own parker once it resumes: whoever woke it is
// ordered before what it does next, without touching the object, which may be gone by then.
inline void release_to(const void* at) noexcept {
    runtime_leave();
    hb_release(at);
    runtime_enter();
}
inline void acquire_from(const void* at) noexcept {
    runtime_leave();
    hb_acquire(at);
    runtime_enter();
}

// SyncOp opens a synchronising operation on object `at` (a channel, a semaphore): a release on
// `at` first, then a RuntimeSection. The operation acquires from `at` once it holds the
// object's lock (acquire_from); wake-ups are ordered through the parker, as above.
struct SyncOp {
    explicit SyncOp(const void* at) noexcept {
        if (at) hb_release(at);
        runtime_enter();
    }
    ~SyncOp() { runtime_leave(); }
    SyncOp(const SyncOp&) = delete;
    SyncOp& operator=(const SyncOp&) = delete;
};

// store_load_barrier() orders this thread's earlier stores before its later loads (the
// Dekker handshake between a worker going idle and a waker publishing work). ThreadSanitizer
// does not model fences, so under it the barrier is a sequentially consistent RMW.
inline void store_load_barrier() noexcept {
#if GORO_TSAN
    static std::atomic<int> dummy{0};
    dummy.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// futex_wait() sleeps while *addr == expected, until futex_wake() or the deadline.
// A deadline of time_point::max() waits without limit. Spurious returns are allowed.
inline void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t expected,
                       Clock::time_point deadline = Clock::time_point::max()) noexcept {
    if (deadline == Clock::time_point::max()) {
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected,
                  nullptr, nullptr, 0);
        return;
    }
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected, &ts,
              nullptr, 0);
}

inline void futex_wake(std::atomic<std::uint32_t>* addr, int n = 1) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAKE_PRIVATE, n, nullptr,
              nullptr, 0);
}

// process_barrier() runs a full memory barrier on every running thread of the process
// (membarrier(2)), so that a thread that pays only a compiler barrier on its side is ordered
// with the caller (the exit handshake). False when the kernel cannot.
inline bool process_barrier() noexcept {
    if (::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
        ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return true;
    return ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0;
}

// prefetch_for_write() starts fetching the two cache lines at p (a G's header, or a small
// block) for writing: with prefetchw, which CPUs without it run as a no-op, a line comes
// exclusive rather than shared and then upgraded at the first store. A prefetch never faults,
// so p may be stale; it must not be null only because the operand names *p.
inline void prefetch_for_write(const void* p) noexcept {
    if (!p) return;
#if defined(__x86_64__)
    asm volatile("prefetchw %0" ::"m"(*static_cast<const char*>(p)));
    asm volatile("prefetchw %0" ::"m"(*(static_cast<const char*>(p) + 64)));
#else
    __builtin_prefetch(p, 1, 3);
    __builtin_prefetch(static_cast<const char*>(p) + 64, 1, 3);
#endif
}

// fatal() prints "fatal error: <msg>" as Go's runtime.throw does and ends the process with
// status 2. It never returns and runs no destructors: other threads may still be running.
[[noreturn]] inline void fatal(std::string_view msg) noexcept {
    std::fflush(stdout);
    std::fprintf(stderr, "fatal error: %.*s\n", static_cast<int>(msg.size()), msg.data());
    std::fflush(stderr);
    std::_Exit(2);
}

// env_size() reads a size from the environment: digits with an optional K, M or G suffix.
inline std::size_t env_size(const char* name, std::size_t fallback) noexcept {
    const char* s = std::getenv(name);
    if (!s || !*s) return fallback;
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    switch (*end) {
        case 'k': case 'K': v <<= 10; ++end; break;
        case 'm': case 'M': v <<= 20; ++end; break;
        case 'g': case 'G': v <<= 30; ++end; break;
        default: break;
    }
    if (end == s || (*end && *end != 'B' && *end != 'b')) return fallback;
    return static_cast<std::size_t>(v);
}

// fastrand() is a per-thread xorshift generator: cheap randomness for steal order and select.
inline std::uint64_t& fastrand_state() noexcept {
    static thread_local std::uint64_t s = [] {
        std::uint64_t x = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
        x ^= reinterpret_cast<std::uintptr_t>(&x);
        return x | 1;
    }();
    return s;
}

inline std::uint32_t fastrand() noexcept {
    std::uint64_t& s = fastrand_state();
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<std::uint32_t>(s >> 32);
}

// seed_fastrand() makes this thread's sequence a function of seed (deterministic scheduling).
inline void seed_fastrand(std::uint64_t seed) noexcept {
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull;  // spread small seeds over the state
    fastrand_state() = (x ^ (x >> 29)) | 1;
}

// fastrandn() returns a value in [0, n).
inline std::uint32_t fastrandn(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(fastrand()) * n) >> 32);
}

// Lock is the runtime's internal mutex, a futex lock that spins briefly before sleeping
// (mirrors lock_futex.go). It is held only for short, non-blocking critical sections: nothing
// parks while holding one. It works on goroutines and plain threads alike.
class Lock {
public:
    void lock() noexcept {
        std::uint32_t v = unlocked;
        if (GORO_LIKELY(key_.compare_exchange_strong(v, locked, std::memory_order_acquire))) return;
        lock_slow();
    }
    bool try_lock() noexcept {
        std::uint32_t v = unlocked;
        return key_.compare_exchange_strong(v, locked, std::memory_order_acquire);
    }
    void unlock() noexcept {
        if (GORO_UNLIKELY(key_.exchange(unlocked, std::memory_order_release) == sleeping))
            futex_wake(&key_);
    }

private:
    static constexpr std::uint32_t unlocked = 0, locked = 1, sleeping = 2;

    GORO_NOINLINE void lock_slow() noexcept {
        std::uint32_t wait = locked;
        for (;;) {
            // Active spinning, for a holder on another core: 4 rounds of 30 pauses, looking at
            // the lock word once a round (lock_futex.go's procyield). Looking after every pause
            // kept pulling the line, which the holder's data often shares (a channel's), away
            // from the holder: contended mpmc took 4x as long.
            for (int i = 0; i < 4; ++i) {
                for (int j = 0; j < 30; ++j) cpu_relax();
                std::uint32_t v = key_.load(std::memory_order_relaxed);
                if (v == unlocked && key_.compare_exchange_weak(v, wait, std::memory_order_acquire))
                    return;
            }
            for (int i = 0; i < 2; ++i) {  // passive: let a descheduled holder run
                ::sched_yield();
                std::uint32_t v = unlocked;
                if (key_.compare_exchange_strong(v, wait, std::memory_order_acquire)) return;
            }
            if (key_.exchange(sleeping, std::memory_order_acquire) == unlocked) return;
            wait = sleeping;
            futex_wait(&key_, sleeping);
        }
    }

    std::atomic<std::uint32_t> key_{unlocked};
};

}  // namespace goro::detail
