// tests/fatal_programs.cpp: small programs that must end the process in Go's way (deadlock,
// panic, misuse), or that look like a deadlock but are not one and must exit 0. fatal_test runs
// each as a subprocess: `fatal_programs <scenario>`.
#include <goro/channel.hpp>
#include <goro/context.hpp>
#include <goro/go.hpp>
#include <goro/select.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include "run_util.hpp"

#include <alloca.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// In fatal_noprobe.cpp, which is compiled without stack-clash probes.
int buffer_frame_unprobed();

namespace {

// Deadlocks: every goroutine and the main thread wait for something nobody will do.

int deadlock_no_goroutines() {
    goro::WaitGroup wg;
    wg.add(1);
    wg.wait();
    return 0;
}

int deadlock_mutex() {
    goro::Mutex mu;
    mu.lock();  // held forever
    goro::WaitGroup wg;
    wg.add(100);
    for (int i = 0; i < 100; ++i)
        goro::go([&] {
            mu.lock();
            wg.done();
        });
    wg.wait();
    return 0;
}

int deadlock_waitgroup() {
    goro::WaitGroup never, wg;
    never.add(1);
    wg.add(100);
    for (int i = 0; i < 100; ++i)
        goro::go([&] {
            never.wait();
            wg.done();
        });
    wg.wait();
    return 0;
}

int deadlock_cond() {
    goro::Mutex mu;
    goro::Cond cond(mu);
    goro::WaitGroup wg;
    wg.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            std::lock_guard<goro::Mutex> lock(mu);
            cond.wait();  // nobody signals
            wg.done();
        });
    wg.wait();
    return 0;
}

// After goroutines ran and finished sleeping, the last waiter still deadlocks.
int deadlock_after_sleep() {
    goro::WaitGroup wg, never;
    never.add(1);
    wg.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            goro::sleep_for(20ms);
            wg.done();
            never.wait();
        });
    wg.wait();
    never.wait();
    return 0;
}

// A plain thread that used the runtime and exited no longer counts as one that may wake the
// waiters.
int deadlock_after_known_thread_exits() {
    std::thread t([] {
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([&] { wg.done(); });
        wg.wait();
    });
    t.join();
    goro::WaitGroup never;
    never.add(1);
    never.wait();
    return 0;
}

// The known thread's exit is the last event: main parks for good first, and the thread ends
// after it. Nothing runs afterwards that could look again, unless the exit hands the check on.
int deadlock_when_known_thread_exits_last() {
    goro::WaitGroup started;
    started.add(1);
    std::thread t([&] {
        goro::go([&] { started.done(); });  // uses the runtime: counted
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
    t.detach();
    started.wait();
    goro::WaitGroup never;
    never.add(1);
    never.wait();
    return 0;
}

// Two plain threads parked for good, with goroutines: /proc lists nothing else.
int deadlock_two_threads() {
    goro::WaitGroup never, parked;
    never.add(1);
    parked.add(1);
    goro::go([&] { never.wait(); });
    std::thread t([&] {
        parked.done();
        never.wait();
    });
    parked.wait();
    never.wait();
    t.join();
    return 0;
}

// BurstPool runs a burst of blocking() calls with a pool whose threads expire after 1 ms, so
// that they leave while the process settles into what follows.
void burst_pool(int n) {
    goro::detail::Scheduler::instance().blocking_pool().set_limits(
        {10'000, std::chrono::milliseconds(1)});
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&, i] {
            goro::blocking([i] { std::this_thread::sleep_for(std::chrono::milliseconds(i % 5)); });
            wg.done();
        });
    wg.wait();
}

// Pool threads that are leaving neither hide a deadlock for good nor fake one.
int deadlock_while_pool_threads_expire() {
    burst_pool(64);
    goro::WaitGroup never;
    never.add(1);
    never.wait();
    return 0;
}

// Panics.

int panic_runtime_error() {
    goro::go([] { throw std::runtime_error("boom"); });
    goro::sleep_for(10s);  // the panic ends the process first
    return 0;
}

int panic_non_std() {
    goro::go([] { throw 42; });
    goro::sleep_for(10s);
    return 0;
}

// Misuse.

int unlock_unlocked_mutex() {
    goro::Mutex mu;
    mu.unlock();
    return 0;
}

int unlock_unlocked_mutex_in_goroutine() {
    goro::Mutex mu;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        mu.lock();
        mu.unlock();
        mu.unlock();
        wg.done();
    });
    wg.wait();
    return 0;
}

int unlock_unlocked_rwmutex() {
    goro::RWMutex rw;
    rw.unlock();
    return 0;
}

// Not deadlocks: something outside the parked goroutines will wake them.

int ok_goroutine_sleeps_then_releases() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        goro::sleep_for(200ms);
        wg.done();
    });
    wg.wait();
    std::puts("ok");
    return 0;
}

int ok_thread_releases() {
    // Every goroutine parks on the gate and main waits on them, but a plain thread that is
    // busy elsewhere (sleeping in the OS) will open the gate.
    goro::WaitGroup gate, wg;
    gate.add(1);
    wg.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            gate.wait();
            wg.done();
        });
    std::thread t([&] {
        std::this_thread::sleep_for(300ms);
        gate.done();
    });
    wg.wait();
    t.join();
    std::puts("ok");
    return 0;
}

int ok_known_thread_releases() {
    // As ok_thread_releases, but the busy thread has used the runtime before (it is counted as a
    // plain thread that is not parked).
    goro::WaitGroup gate, wg, known;
    gate.add(1);
    wg.add(10);
    known.add(1);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            gate.wait();
            wg.done();
        });
    std::thread t([&] {
        goro::WaitGroup own;
        own.add(1);
        goro::go([&] { own.done(); });
        own.wait();
        known.done();
        std::this_thread::sleep_for(300ms);
        gate.done();
    });
    known.wait();
    wg.wait();
    t.join();
    std::puts("ok");
    return 0;
}

int ok_unknown_thread_releases_parked_threads() {
    // Every plain thread the runtime knows is parked (main and t), and so is every goroutine;
    // a thread the runtime never saw, busy computing, will open the gate.
    goro::WaitGroup gate, wg, parked;
    gate.add(1);
    wg.add(11);
    parked.add(1);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            gate.wait();
            wg.done();
        });
    std::thread t([&] {
        parked.done();
        gate.wait();
        wg.done();
    });
    parked.wait();
    std::thread busy([&] {
        auto end = std::chrono::steady_clock::now() + 300ms;
        while (std::chrono::steady_clock::now() < end) {
        }
        gate.done();
    });
    wg.wait();
    t.join();
    busy.join();
    std::puts("ok");
    return 0;
}

int ok_thread_releases_while_pool_threads_expire() {
    burst_pool(64);
    goro::WaitGroup gate;
    gate.add(1);
    std::thread t([&] {
        std::this_thread::sleep_for(300ms);
        gate.done();
    });
    gate.wait();
    t.join();
    std::puts("ok");
    return 0;
}

// GORO_MAX_BLOCKING_THREADS caps the pool; the calls beyond wait for a thread.
int blocking_cap_from_env() {
    const int n = 8;
    std::atomic<int> inflight{0}, most{0};
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            goro::blocking([&] {
                int now = inflight.fetch_add(1) + 1;
                for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
                }
                std::this_thread::sleep_for(50ms);
                inflight.fetch_sub(1);
            });
            wg.done();
        });
    wg.wait();
    std::printf("ok: at most %d calls at once\n", most.load());
    return 0;
}

// forbid_new_threads() makes every later thread creation in the process fail with EAGAIN, as
// an exhausted RLIMIT_NPROC would (which does not bind root): a seccomp filter on all threads
// fails clone() with CLONE_THREAD, and clone3(), whose flags it cannot read, with ENOSYS, so that
// glibc falls back to clone(). Process creation (LeakSanitizer's tracer) still works.
bool forbid_new_threads() {
#if defined(__x86_64__) && defined(__NR_clone3)
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // low half
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
    return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0;
#else
    return false;
#endif
}

constexpr int skipped = 77;  // the scenario cannot run here

// The first blocking() call cannot get a thread, and the pool has none: Go's newosproc error.
int newosproc_without_pool_thread() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] { wg.done(); });  // the workers exist before thread creation is forbidden
    wg.wait();
    if (!forbid_new_threads()) return skipped;
    wg.add(1);
    goro::go([&] {
        goro::blocking([] {});
        wg.done();
    });
    wg.wait();
    std::puts("blocking() ran without a thread");
    return 0;
}

// A call that cannot get a thread of its own waits for the pool's busy one.
int ok_newosproc_with_pool_thread() {
    std::atomic<bool> first_running{false}, forbidden{false};
    std::atomic<int> second{0};
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
        goro::blocking([&] {
            first_running = true;
            while (!forbidden.load()) std::this_thread::sleep_for(1ms);
            std::this_thread::sleep_for(100ms);
        });
        wg.done();
    });
    while (!first_running.load()) std::this_thread::sleep_for(1ms);
    if (!forbid_new_threads()) return skipped;
    forbidden = true;
    goro::go([&] {
        second = goro::blocking([] { return 7; });
        wg.done();
    });
    wg.wait();
    if (second.load() != 7) return 1;
    std::puts("ok");
    return 0;
}

int ok_blocking_call() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        goro::blocking([] { std::this_thread::sleep_for(200ms); });
        wg.done();
    });
    wg.wait();
    std::puts("ok");
    return 0;
}

int ok_main_returns_with_parked_goroutines() {
    // As in Go, goroutines still parked when main returns do not keep the process alive.
    // What they use must outlive main's frame (Go's escape analysis would heap-allocate it):
    // a goroutine may still be entering never.wait() while exit() reuses main's stack.
    // Static storage is not enough: its destructors run at exit, under goroutines still
    // inside wait() or done(). These are never destroyed.
    static auto& never = *new goro::WaitGroup;
    static auto& started = *new goro::WaitGroup;
    never.add(1);
    started.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([&] {
            started.done();
            never.wait();
        });
    started.wait();
    std::puts("ok");
    return 0;
}

// For LeakSanitizer (ASan builds), which scans thread stacks but not fibers: what only a parked
// goroutine's stack references is not a leak, and a goroutine's true leak is still found.
GORO_NOINLINE void use(std::vector<int>* v) { asm volatile("" : : "r"(v) : "memory"); }

int ok_parked_goroutines_keep_their_objects() {
    // Each goroutine holds its own handle of the channel, as a Go closure would; the WaitGroup
    // is never destroyed, since a goroutine may still be in done() when main returns.
    goro::Channel<int> never;
    static auto& started = *new goro::WaitGroup;
    started.add(100);
    for (int i = 0; i < 100; ++i)
        goro::go([never] {
            auto* kept = new std::vector<int>(64, 7);  // referenced from this stack alone
            started.done();
            never.recv();
            use(kept);
            delete kept;
        });
    started.wait();
    std::puts("ok");
    return 0;
}

GORO_NOINLINE void leak_once() { use(new std::vector<int>(64, 7)); }

int leak_in_goroutine() {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        leak_once();
        wg.done();
    });
    wg.wait();
    // A goroutine still running at exit has its whole stack scanned, dead frames included:
    // let this one finish.
    while (goro::num_goroutine() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::puts("ok");
    std::fflush(stdout);  // LSan's report ends the process before stdio is flushed
    return 0;
}

// Stack overflow. Small stacks keep the recursion short; the sizes must be set before the
// runtime starts, which is at the first go().
void small_stacks(bool hard_guards) {
    ::setenv("GORO_STACK_SIZE", "64K", 1);
    if (!hard_guards) ::setenv("GORO_STACK_HARD_GUARDS", "0", 1);
}

// recurse() uses about 600 bytes of stack a level until `stop` says enough.
template <class Stop>
GORO_NOINLINE int recurse(const char* first, Stop stop) {
    volatile char frame[512];
    for (std::size_t i = 0; i < sizeof frame; ++i) frame[i] = static_cast<char>(i | 1);
    if (stop(first - const_cast<const char*>(&frame[0]))) return frame[7];
    return recurse(first, stop) + frame[11];
}

int overflow_hard_guard() {
    small_stacks(true);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        char first = 0;
        recurse(&first, [](std::ptrdiff_t) { return false; });  // until the guard page
        wg.done();
    });
    wg.wait();
    std::puts("not reached");
    return 0;
}

// dive() runs a goroutine that recurses `depth` bytes down its stack, comes back up, and
// switches; then main says "ok".
int dive(std::ptrdiff_t depth) {
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        char first = 0;
        recurse(&first, [depth](std::ptrdiff_t d) { return d > depth; });
        goro::yield();
        wg.done();
    });
    wg.wait();
    std::puts("ok");
    return 0;
}

int overflow_soft_guard() {
    // No hard guard: the goroutine writes into its soft guard page, comes back up, and is
    // caught at its next switch by the canary (the soft guard's top word is no longer zero).
    small_stacks(false);
    return dive(64 * 1024 + 1024);
}

int ok_deep_recursion_within_stack() {
    // The same recursion to just short of the stack's end is no overflow.
    small_stacks(false);
    return dive(48 * 1024);
}

// Frames that jump the guard. Goroutine A parks with 24 KiB of live data at the top of its
// stack; goroutine B, whose stack is the next one carved from the arena and so lies right above
// A's, runs `frame` and then switches once (where a soft guard is checked) before it wakes A.
// A frame that skips B's guard lands in A's data: A counts the words it lost, and the program
// exits 1 if it lost any, 0 if none and no overflow was reported.
int neighbour(bool hard_guards, void (*frame)()) {
    small_stacks(hard_guards);
    goro::Channel<int> wake;
    goro::WaitGroup parked, done;
    parked.add(1);
    done.add(1);
    int lost = 0;
    goro::go([&] {
        volatile std::uint64_t canary[3072];
        for (auto& c : canary) c = 0x1111111111111111;
        parked.done();
        wake.recv();
        for (auto& c : canary) lost += c != 0x1111111111111111;
        done.done();
    });
    parked.wait();
    goro::go([&] {
        frame();
        goro::yield();
        wake.send(1);
    });
    done.wait();
    std::printf("A: %d canary words overwritten\n", lost);
    if (lost > 0) return 1;
    std::puts("ok");
    return 0;
}

// frame_over_stack() has one frame larger than the whole stack, of which it writes only the
// lowest 4 KiB: 20 KiB below the stack's end (t_guard_skip.cpp).
GORO_NOINLINE void frame_over_stack() {
    volatile char buf[64 * 1024 + 20 * 1024];
    for (int i = 0; i < 4096; ++i) buf[i] = static_cast<char>(0xAB);
    asm volatile("" : : "r"(&buf[0]) : "memory");
}

// buffer_frame() is an I/O buffer of 32 KiB of which only the first 4 KiB get data.
GORO_NOINLINE int buffer_frame() {
    char buf[32 * 1024];
    std::memset(buf, 0xAB, 4096);
    asm volatile("" : : "r"(buf) : "memory");
    return buf[0];
}

// dive_then() recurses in small frames to within 6 KiB of the stack's end, then calls leaf
// (t_guard_skip2.cpp: ordinary frames, the last of which holds a buffer).
GORO_NOINLINE int dive_then(const char* bottom, int (*leaf)()) {
    volatile char frame[512];
    frame[0] = 1;
    if (const_cast<const char*>(&frame[0]) - bottom < 6 * 1024) return leaf() + frame[0];
    return dive_then(bottom, leaf) + frame[0];
}

void dive_to_buffer() { dive_then(goro::detail::current_g()->stack.bottom(), buffer_frame); }
void dive_to_unprobed_buffer() {
    dive_then(goro::detail::current_g()->stack.bottom(), buffer_frame_unprobed);
}

int overflow_frame_over_stack() { return neighbour(true, frame_over_stack); }
int overflow_buffer_frame() { return neighbour(true, dive_to_buffer); }
int overflow_unprobed_buffer_frame() { return neighbour(true, dive_to_unprobed_buffer); }
int soft_frame_over_stack() { return neighbour(false, frame_over_stack); }
int soft_buffer_frame() { return neighbour(false, dive_to_buffer); }
int soft_unprobed_buffer_frame() { return neighbour(false, dive_to_unprobed_buffer); }

// overflow_soft_guard_partial() reaches 2 KiB into its soft guard with a dynamic frame and
// writes 1 KiB at its low end, leaving the guard's top word zero.
GORO_NOINLINE void write_below_stack() {
    char* bottom = goro::detail::current_g()->stack.bottom();
    char here = 0;
    auto n = static_cast<std::size_t>(&here - (bottom - 2048)) + 64;
    char* p = static_cast<char*>(alloca(n));
    std::memset(bottom - 2048, 0xAB, 1024);  // inside p[0, n)
    asm volatile("" : : "r"(p), "r"(&here) : "memory");
}

int overflow_soft_guard_partial() {
    small_stacks(false);
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        write_below_stack();
        goro::yield();
        wg.done();
    });
    wg.wait();
    std::puts("not reached");
    return 0;
}

// ok_deep_exits_give_back_memory() parks goroutines with 32 KiB of frames each, lets them exit
// and prints how much of their memory the process still holds: the stack pools keep a bounded
// amount (detail/stack.hpp), the rest goes back to the kernel.
long rss_kb() {
    long pages = 0, resident = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return resident * static_cast<long>(::sysconf(_SC_PAGESIZE)) / 1024;
}

GORO_NOINLINE void park_deep(goro::WaitGroup& started, goro::WaitGroup& gate) {
    volatile char buf[32 * 1024];
    for (std::size_t i = 0; i < sizeof buf; i += 64) buf[i] = 1;
    started.done();
    gate.wait();  // parks 32 KiB deep: the switch sees the depth
    asm volatile("" : : "r"(&buf[0]) : "memory");
}

int ok_deep_exits_give_back_memory() {
#if GORO_ASAN || GORO_TSAN
    const int n = 1000;
#else
    const int n = 4000;  // well past the pools: 64 stacks a worker, 1,024 shared
#endif
    goro::WaitGroup started, gate;
    started.add(1);
    goro::go([&] { started.done(); });  // the runtime's own memory is not the goroutines'
    started.wait();
    while (goro::num_goroutine() > 0) std::this_thread::sleep_for(1ms);
    long before = rss_kb();
    started.add(n);
    gate.add(1);
    for (int i = 0; i < n; ++i) goro::go([&] { park_deep(started, gate); });
    started.wait();
    long peak = rss_kb();
    gate.done();
    while (goro::num_goroutine() > 0) std::this_thread::sleep_for(1ms);
    long after = rss_kb();
    std::printf("%d goroutines: rss +%ld KiB parked, +%ld KiB after they exited, %d workers\n",
                n, peak - before, after - before, goro::gomaxprocs());
    std::puts("ok");
    return 0;
}

// det_trace() prints the order in which goroutines took turns: under GORO_SCHED_SEED, a
// function of the seed. One root goroutine makes the others, so that main, a plain thread
// that the scheduler does not order, only starts the program and waits for its end.
int det_trace() {
    static auto& mu = *new goro::Mutex;
    static auto& trace = *new std::string;
    auto note = [](char c) {
        std::lock_guard<goro::Mutex> lock(mu);
        trace += c;
    };
    goro::WaitGroup done;
    done.add(1);
    goro::go([&] {
        goro::WaitGroup wg;
        goro::Channel<int> a, b;
        wg.add(6);
        for (int i = 0; i < 4; ++i)
            goro::go([&, i] {
                for (int r = 0; r < 4; ++r) {
                    note(static_cast<char>('a' + i));
                    goro::yield();
                }
                wg.done();
            });
        goro::go([&] {  // sends 8 values, each on whichever of a and b select picks
            for (int v = 0; v < 8; ++v)
                goro::select(goro::send(a, v, [&] { note('<'); }),
                             goro::send(b, v, [&] { note('>'); }));
            a.close();
            b.close();
            wg.done();
        });
        goro::go([&] {
            bool open_a = true, open_b = true;
            while (open_a || open_b) {
                if (open_a) open_a = a.recv().has_value();
                if (open_b) open_b = b.recv().has_value();
                note('.');
            }
            wg.done();
        });
        wg.wait();
        done.done();
    });
    done.wait();
    std::printf("seed %llu trace %s\n", static_cast<unsigned long long>(goro::sched_seed()),
                trace.c_str());
    return 0;
}

// oom_stacks() runs out of address space for goroutine stacks (an address-space limit stands in
// for a machine out of memory): the runtime must say so and exit 2, not crash.
int oom_stacks() {
    rlimit lim{};
    ::getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = 512ull << 20;  // far less than 10,000 stacks of 256 KiB reserve
    if (::setrlimit(RLIMIT_AS, &lim) != 0) return 3;
    static auto& never = *new goro::WaitGroup;
    never.add(1);
    for (int i = 0; i < 10'000; ++i) goro::go([] { never.wait(); });
    goro::sleep_for(std::chrono::seconds(10));
    std::puts("not reached");
    return 0;
}

void shrink_while_running(std::chrono::milliseconds first, std::chrono::milliseconds second) {
    goro::set_gomaxprocs(2);
    goro::WaitGroup wg, started;
    wg.add(2);
    started.add(2);
    for (auto d : {first, second})
        goro::go([&wg, &started, d] {
            started.done();
            auto end = std::chrono::steady_clock::now() + d;
            while (std::chrono::steady_clock::now() < end) {
            }
            wg.done();
        });
    started.wait();  // both run at once, so on different workers (no preemption)
    goro::set_gomaxprocs(1);
    wg.wait();
}

int ok_gomaxprocs_shrinks_under_running_goroutines() {
    // Goroutines keep running on a worker that GOMAXPROCS no longer counts; the other worker
    // going idle while main waits must not look like a deadlock. Both orders, since which
    // goroutine lands on the retired worker varies.
    shrink_while_running(200ms, 400ms);
    shrink_while_running(400ms, 200ms);
    std::puts("ok");
    return 0;
}

// Exit (repro t_exit_static): when main returns, no goroutine runs again, and nothing is
// destroyed under one that still runs. A global container that goroutines iterate while main
// returns: destroyed by exit() in the middle of their loops, it was used after free (ASan saw
// it in 6 of 10 runs). The goroutines either compute without a scheduling point (the process
// ends at once, with _exit) or yield in their loop (they stop at the next switch, and the
// destructors run after).
std::map<int, std::string> exit_table;
std::atomic<long> exit_sink{0};

int exit_while_goroutines_iterate(bool yield) {
    for (int i = 0; i < 20000; ++i) exit_table[i] = std::string(64, 'x');
    static auto& started = *new goro::WaitGroup;
    int n = yield ? 2 * goro::gomaxprocs() : goro::gomaxprocs();  // computing ones never yield a worker
    started.add(n);
    for (int k = 0; k < n; ++k)
        goro::go([yield] {
            started.done();
            for (;;) {
                long s = 0;
                for (auto& kv : exit_table) {
                    s += static_cast<long>(kv.second.size());
                    if (yield && kv.first % 64 == 0) goro::yield();
                }
                exit_sink.fetch_add(s, std::memory_order_relaxed);
            }
        });
    started.wait();
    goro::sleep_for(20ms);
    std::puts("ok");
    return 0;
}
int ok_exit_while_goroutines_compute() { return exit_while_goroutines_iterate(false); }
int ok_exit_while_goroutines_yield() { return exit_while_goroutines_iterate(true); }

// Static destructors run when every goroutine is parked or done at exit.
struct SaysGoodbye {
    ~SaysGoodbye() { std::puts("static destructor ran"); }
} goodbye;

int ok_exit_runs_static_destructors() {
    static goro::Channel<int> never;  // parked goroutines wait on a static: it is destroyed
    static auto& started = *new goro::WaitGroup;
    started.add(10);
    for (int i = 0; i < 10; ++i)
        goro::go([] {
            started.done();
            never.recv();
            std::puts("a parked goroutine ran after exit");
        });
    started.wait();
    goro::sleep_for(10ms);
    std::puts("ok");
    return 0;
}

// The exit status survives, and output not yet flushed is flushed, when exit cuts goroutines
// short: buffered stdio (stdout is a pipe here) and std::cout.
int exit_status_with_running_goroutine() {
    static std::atomic<bool> running{false};
    goro::go([] {
        running = true;
        for (;;) exit_sink.fetch_add(1, std::memory_order_relaxed);
    });
    while (!running) std::this_thread::yield();
    std::printf("printf output ");
    std::cout << "cout output";
    return 3;
}

// exit() called on a goroutine ends the process with its status while another one runs (and
// yields, so that at GOMAXPROCS=1 the exiting one gets to run).
int exit_from_goroutine() {
    goro::go([] {
        for (;;) {
            exit_sink.fetch_add(1, std::memory_order_relaxed);
            goro::yield();
        }
    });
    goro::go([] {
        goro::sleep_for(10ms);
        std::printf("exiting from a goroutine\n");
        std::exit(4);
    });
    for (;;) goro::sleep_for(1s);
}

// hang_sleep_forever(): main waits for nothing while a goroutine sleeps for duration::max().
// Go 1.19 does not call this a deadlock (checkdead returns while any P has a timer, and a
// time.Sleep(maxDuration) is one, at maxWhen): the program hangs, and so must this one.
int hang_sleep_forever() {
    goro::go([] { goro::sleep_for(goro::Clock::duration::max()); });
    goro::WaitGroup never;
    never.add(1);
    never.wait();
    return 0;
}

// Deep context chains (issue 9): each layer was a frame of recursion on a goroutine's
// 256 KiB stack, which ran out at ~2,000 nested cancels and ~10,000 value layers.
constexpr int deep_chain = 100'000;

// in_goroutine() runs f on a goroutine and waits for it; "ok" once it returns.
template <class F>
int in_goroutine(F f) {
    goro_test::run_in_goroutine(f);
    std::puts("ok");
    return 0;
}

int ok_ctx_cancel_deep_chain() {
    auto [root, cancel_root] = goro::with_cancel(goro::background());
    std::vector<goro::CancelFunc> cancels;
    goro::Context ctx = root;
    for (int i = 0; i < deep_chain; ++i) {
        auto [c, cancel] = goro::with_cancel(ctx);
        ctx = c;
        cancels.push_back(cancel);
    }
    return in_goroutine([&, cancel_root = cancel_root] {
        cancel_root();
        if (ctx.err() != goro::errc::canceled) std::abort();
        cancels.clear();
        ctx = goro::Context();  // drops the chain of cancelled contexts, on the goroutine
    });
}

const goro::ContextKey<int> layer_key{"layer"}, missing_key{"missing"};

int ok_ctx_drop_deep_values() {
    return in_goroutine([] {
        goro::Context ctx;
        for (int i = 0; i < deep_chain; ++i) ctx = goro::with_value(ctx, layer_key, i);
        ctx = goro::Context();
    });
}

int ok_ctx_lookup_deep_values() {
    auto [root, cancel] = goro::with_timeout(goro::background(), std::chrono::hours(1));
    goro::Context ctx = root;
    for (int i = 0; i < deep_chain; ++i) ctx = goro::with_value(ctx, layer_key, i);
    int rc = in_goroutine([&, cancel = cancel] {
        if (ctx.value(missing_key) != nullptr || *ctx.value(layer_key) != deep_chain - 1 ||
            ctx.err() || ctx.deadline() != root.deadline() || ctx.done() != root.done())
            std::abort();
        cancel();
        if (ctx.err() != goro::errc::canceled) std::abort();
    });
    ctx = goro::Context();  // on main: a plain thread's stack must not matter either
    return rc;
}

struct Scenario {
    const char* name;
    int (*run)();
};

const Scenario scenarios[] = {
    {"deadlock_no_goroutines", deadlock_no_goroutines},
    {"deadlock_mutex", deadlock_mutex},
    {"deadlock_waitgroup", deadlock_waitgroup},
    {"deadlock_cond", deadlock_cond},
    {"deadlock_after_sleep", deadlock_after_sleep},
    {"deadlock_after_known_thread_exits", deadlock_after_known_thread_exits},
    {"deadlock_when_known_thread_exits_last", deadlock_when_known_thread_exits_last},
    {"deadlock_two_threads", deadlock_two_threads},
    {"deadlock_while_pool_threads_expire", deadlock_while_pool_threads_expire},
    {"panic_runtime_error", panic_runtime_error},
    {"panic_non_std", panic_non_std},
    {"unlock_unlocked_mutex", unlock_unlocked_mutex},
    {"unlock_unlocked_mutex_in_goroutine", unlock_unlocked_mutex_in_goroutine},
    {"unlock_unlocked_rwmutex", unlock_unlocked_rwmutex},
    {"ok_goroutine_sleeps_then_releases", ok_goroutine_sleeps_then_releases},
    {"ok_thread_releases", ok_thread_releases},
    {"ok_blocking_call", ok_blocking_call},
    {"ok_known_thread_releases", ok_known_thread_releases},
    {"ok_unknown_thread_releases_parked_threads", ok_unknown_thread_releases_parked_threads},
    {"ok_thread_releases_while_pool_threads_expire", ok_thread_releases_while_pool_threads_expire},
    {"blocking_cap_from_env", blocking_cap_from_env},
    {"newosproc_without_pool_thread", newosproc_without_pool_thread},
    {"ok_newosproc_with_pool_thread", ok_newosproc_with_pool_thread},
    {"ok_main_returns_with_parked_goroutines", ok_main_returns_with_parked_goroutines},
    {"ok_parked_goroutines_keep_their_objects", ok_parked_goroutines_keep_their_objects},
    {"leak_in_goroutine", leak_in_goroutine},
    {"det_trace", det_trace},
    {"oom_stacks", oom_stacks},
    {"overflow_hard_guard", overflow_hard_guard},
    {"overflow_soft_guard", overflow_soft_guard},
    {"ok_deep_recursion_within_stack", ok_deep_recursion_within_stack},
    {"overflow_frame_over_stack", overflow_frame_over_stack},
    {"overflow_buffer_frame", overflow_buffer_frame},
    {"overflow_unprobed_buffer_frame", overflow_unprobed_buffer_frame},
    {"soft_frame_over_stack", soft_frame_over_stack},
    {"soft_buffer_frame", soft_buffer_frame},
    {"soft_unprobed_buffer_frame", soft_unprobed_buffer_frame},
    {"overflow_soft_guard_partial", overflow_soft_guard_partial},
    {"ok_deep_exits_give_back_memory", ok_deep_exits_give_back_memory},
    {"ok_gomaxprocs_shrinks_under_running_goroutines",
     ok_gomaxprocs_shrinks_under_running_goroutines},
    {"ok_exit_while_goroutines_compute", ok_exit_while_goroutines_compute},
    {"ok_exit_while_goroutines_yield", ok_exit_while_goroutines_yield},
    {"ok_exit_runs_static_destructors", ok_exit_runs_static_destructors},
    {"exit_status_with_running_goroutine", exit_status_with_running_goroutine},
    {"exit_from_goroutine", exit_from_goroutine},
    {"hang_sleep_forever", hang_sleep_forever},
    {"ok_ctx_cancel_deep_chain", ok_ctx_cancel_deep_chain},
    {"ok_ctx_drop_deep_values", ok_ctx_drop_deep_values},
    {"ok_ctx_lookup_deep_values", ok_ctx_lookup_deep_values},
};

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2)
        for (const Scenario& s : scenarios)
            if (std::strcmp(argv[1], s.name) == 0) return s.run();
    std::fprintf(stderr, "usage: %s <scenario>; scenarios:\n", argv[0]);
    for (const Scenario& s : scenarios) std::fprintf(stderr, "  %s\n", s.name);
    return 64;
}
