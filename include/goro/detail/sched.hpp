// goro/detail/sched.hpp: goroutines, workers and the M:N scheduler (mirrors proc.go).
//
// The model. A goroutine (G) is a closure, a control block and, once it first runs, a stack
// from the stack allocator. GOMAXPROCS workers each own an OS thread and a scheduling context
// (Go's M and P are one object here: goroutines never block a worker in a syscall, because
// blocking calls go through blocking() to a separate pool, so there is no need to hand a P to
// another M). A worker runs a loop on its thread's own stack (Go's g0): find a runnable G,
// switch to it, and when it switches back, act on what it asked for (park, yield, exit).
//
// Run queues. Each worker has a bounded lock-free ring of 256 Gs plus a runnext slot; the owner
// pushes at the tail and pops at the head, thieves take half from the head with a CAS (runqput,
// runqget, runqgrab in proc.go). A G made runnable by a goroutine (ready, or go) goes to the
// waker's runnext, so a producer/consumer pair runs back to back on one worker with warm caches;
// the displaced runnext goes to the tail. When the ring is full, half of it moves to the global
// queue. yield() puts the G on the global queue, which workers check first every 61st round so
// that it cannot starve.
//
// Plain threads. Go's main is a goroutine with a P; goro's main is a plain thread. Each plain
// thread that makes Gs runnable (go, or ready) claims a ring of its own (ExtQueue: a P's run
// queue without the P) and pushes there without a lock; the workers steal from it as from
// each other. When the thread exits, the ring, with whatever it still holds, is free for the
// next thread to claim. Through the global queue, a plain thread spawning in a loop took its
// lock and shared its cache lines with every worker at each go(): five locked instructions
// per spawn, where the ring needs one (wakep's fence). At most max_ext rings exist; further
// threads, and blocking-pool threads (one ready() per call), use the global queue. A worker
// whose own queue is empty looks at the rings before the global queue, as a P's own queue
// comes first in Go, and every 61st round it takes one G from them or from the global queue,
// the two taking turns at going first, so that neither can starve behind local work.
//
// Idle workers and spinning (findrunnable in proc.go). A worker that finds no work becomes
// "spinning" and tries to steal, but only while spinning workers are fewer than half the busy
// ones. Whoever makes work runnable calls wakep(), which wakes one idle worker, and only if no
// worker is spinning already; a spinning worker that finds work wakes the next one when it was
// the last spinner. So work is picked up at once, yet a burst of wake-ups does not wake every
// worker. Before a worker sleeps it rechecks every queue after publishing itself idle, so a
// concurrent wakep() either sees it idle or it sees the work: no lost wake-up. Idle workers
// sleep on a futex: an idle process uses no CPU.
//
// Timers (timer.hpp). Of the idle workers, at most one is the poller: it sleeps until the
// earliest timer of all heaps, not indefinitely. A new timer earlier than that wakes it.
//
// park/ready (gopark/goready). Every blocking primitive parks through park(unlock): the G is
// marked waiting and switches to its worker's scheduler stack, which saves its context and only
// then calls unlock (which releases the lock protecting the G's wait-queue entry). A waker must
// take that lock to find the waiter, so it can never resume a G whose context is not yet saved.
// On a plain thread the same call blocks the thread on a futex. ready() makes a parked G
// runnable or wakes the thread.
//
// Deadlock (checkdead). When every worker is idle, no G is runnable, no timer, I/O wait or
// blocking() call is pending, some plain thread is blocked in park, and every thread of the
// process is either a runtime thread or such a blocked thread (read from /proc/self/stat, so a
// thread that is merely busy elsewhere can still release the waiters and rules deadlock out),
// nothing can ever run again: report it as Go does. /proc is read only once every plain thread
// the runtime has seen is parked: counters tell the rest (check_dead).
//
// Lock order: Scheduler::mu_ (global queue, idle list) is a leaf but for check_dead's census of
// the blocking pool, whose lock it takes under mu_ (never the reverse); TimerHeap locks are leaves;
// primitive locks (channel, semaphore) may be held while calling ready(), which takes mu_.
//
// Rejected: a global run queue only (contended by every worker); work-sharing on spawn (pushes
// to other workers' queues, cache-cold); spinning idle workers (burns CPU, Boost.Fiber's
// criticised default); a dedicated timer thread (an extra wake-up and thread hop per timer).
#pragma once

#include "goro/detail/alloc.hpp"
#include "goro/detail/platform.hpp"
#include "goro/detail/stack.hpp"
#include "goro/detail/timer.hpp"

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>
#include <csignal>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if GORO_ASAN
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif
#if GORO_TSAN
#include <sanitizer/tsan_interface.h>
// TSan's function-exit hook (instrumentation ABI, not in tsan_interface.h), declared under
// another name because GCC knows __tsan_func_exit as a builtin of another signature.
extern "C" void goro_tsan_func_exit() __asm__("__tsan_func_exit");
#endif

namespace goro::detail {

#if GORO_TSAN
// Fiber switches do not synchronise: Go's model, see platform.hpp.
constexpr unsigned tsan_switch_flags = __tsan_switch_to_fiber_no_sync;
#endif

namespace ctx = boost::context::detail;

class Scheduler;
struct Worker;

// Parker is what can block: a goroutine or a plain OS thread.
struct Parker {
    enum class Kind : std::uint8_t { goroutine, thread };
    explicit Parker(Kind k) noexcept : kind(k) {}
    Kind kind;
};

// The C++ runtime keeps the caught-exception stack per thread. A goroutine that parks inside a
// catch block and resumes on another worker must take its own with it, so it is swapped at
// every switch (libstdc++ and libc++abi share this layout).
struct EhGlobals {
    void* caught = nullptr;
    unsigned int uncaught = 0;
};
// <cxxabi.h> declares __cxa_get_globals __attribute__((const)), which lets the compiler reuse
// one call's result for the next: switch_out() would then restore a goroutine that resumed on
// another thread into the previous thread's globals. Calling it through a pointer the compiler
// cannot see through makes every call read the current thread's.
inline EhGlobals* eh_globals() noexcept {
    auto* get = &abi::__cxa_get_globals;
    asm volatile("" : "+r"(get));
    return reinterpret_cast<EhGlobals*>(get());
}

// G is a goroutine's control block (Go's g), allocated together with its closure.
struct G : Parker {
    G() noexcept : Parker(Kind::goroutine) {}
    ctx::fcontext_t context = nullptr;  // saved registers while not running
    Stack stack;                   // empty until the goroutine first runs
    Worker* m = nullptr;           // worker running it; valid while it runs
    std::uint64_t id = 0;
    void (*run)(G*) = nullptr;     // calls the closure, then destroys it (on the G's stack)
    void (*free)(G*) = nullptr;    // frees the allocation (on the scheduler stack)
    EhGlobals eh;                  // caught exceptions while switched out
#if GORO_ASAN
    void* asan_fake = nullptr;
    G* lsan_prev = nullptr;        // the started, unfinished Gs; guarded by Scheduler::lsan_mu_
    G* lsan_next = nullptr;
#endif
};

template <class Fn>
struct GoClosure final : G {
    static constexpr int size_class = BlockCache::size_class(sizeof(GoClosure<Fn>));
    static_assert(alignof(Fn) <= alignof(std::max_align_t), "over-aligned goroutine closure");

    explicit GoClosure(Fn&& f) : fn(std::move(f)) {
        run = [](G* g) {
            auto* self = static_cast<GoClosure*>(g);
            std::move(self->fn)();
            std::destroy_at(&self->fn);
        };
        free = [](G* g) {
            auto* self = static_cast<GoClosure*>(g);
            self->~GoClosure();
            if constexpr (size_class >= 0) BlockCache::deallocate(self, size_class);
            else ::operator delete(self);
        };
    }
    static GoClosure* make(Fn&& f) {
        void* p;
        if constexpr (size_class >= 0) p = BlockCache::allocate(size_class);
        else p = ::operator new(sizeof(GoClosure));
        try {
            return ::new (p) GoClosure(std::move(f));
        } catch (...) {
            if constexpr (size_class >= 0) BlockCache::deallocate(p, size_class);
            else ::operator delete(p);
            throw;
        }
    }
    union { Fn fn; };   // destroyed by run, on the goroutine's stack
    ~GoClosure() {}
};

// ThreadParker is a plain thread's way to block (Go has no equivalent: its main is a goroutine).
struct ThreadParker : Parker {
    ThreadParker() noexcept : Parker(Kind::thread) {}
    std::atomic<std::uint32_t> state{0};  // 0 running, 1 parked, 2 readied
};

// Unlock is the callback park() runs once the caller is safely marked waiting. Returning false
// cancels the park (gopark's unlockf).
struct Unlock {
    bool (*fn)(void*) = nullptr;
    void* arg = nullptr;
};

template <class F>
Unlock make_unlock(F& f) noexcept {
    return Unlock{[](void* a) -> bool {
                      if constexpr (std::is_void_v<decltype((*static_cast<F*>(a))())>) {
                          (*static_cast<F*>(a))();
                          return true;
                      } else {
                          return (*static_cast<F*>(a))();
                      }
                  },
                  &f};
}

// GlobalRunQueue is the global run queue (sched.runq), guarded by Scheduler::mu_: a growable
// ring of G pointers. Go links the Gs themselves through g.schedlink, so that moving a batch
// touches every G in it: linking the half of a full local ring that overflows, and walking
// the list to take a share back, one dependent cache miss per G (pushed by another worker, or
// evicted since), all under the lock. skynet spent ~12% of its time in that walk. Pointers in
// an array move without touching the Gs.
class GlobalRunQueue {
public:
    GlobalRunQueue() = default;
    GlobalRunQueue(const GlobalRunQueue&) = delete;
    ~GlobalRunQueue() { std::free(buf_); }

    std::uint32_t size() const noexcept { return n_; }

    void push(G* const* gs, std::uint32_t n) {
        if (n_ + n > cap_) grow(n_ + n);
        for (std::uint32_t i = 0; i < n; ++i) buf_[(head_ + n_ + i) & (cap_ - 1)] = gs[i];
        n_ += n;
    }
    G* pop() noexcept {
        if (n_ == 0) return nullptr;
        G* g = buf_[head_];
        head_ = (head_ + 1) & (cap_ - 1);
        if (--n_ == 0 && cap_ > keep_cap) {
            // Emptied after a burst (a million goroutines from main): give the memory back.
            std::free(buf_);
            buf_ = nullptr;
            cap_ = head_ = 0;
        }
        return g;
    }

private:
    void grow(std::uint32_t need) {
        std::uint32_t cap = cap_ ? cap_ : 1024;
        while (cap < need) cap *= 2;
        auto* buf = static_cast<G**>(std::malloc(sizeof(G*) * cap));
        if (!buf) fatal("out of memory growing the global run queue");
        for (std::uint32_t i = 0; i < n_; ++i) buf[i] = buf_[(head_ + i) & (cap_ - 1)];
        std::free(buf_);
        buf_ = buf;
        cap_ = cap;
        head_ = 0;
    }

    static constexpr std::uint32_t keep_cap = 64 * 1024;  // 512 KiB of pointers

    G** buf_ = nullptr;
    std::uint32_t cap_ = 0;  // a power of two
    std::uint32_t head_ = 0;
    std::uint32_t n_ = 0;
};

// RunQueue is a bounded lock-free ring of Gs: head is taken by anyone with a CAS, tail is
// written by the owner only; a worker's also has a runnext slot.
struct alignas(64) RunQueue {
    static constexpr std::uint32_t runq_size = 256;

    std::atomic<std::uint32_t> runq_head{0};
    std::atomic<std::uint32_t> runq_tail{0};
    std::atomic<G*> runnext{nullptr};
    std::atomic<G*> runq[runq_size];
};

// ExtQueue is a plain thread's run queue (see "Plain threads" above); runnext stays empty.
struct ExtQueue : RunQueue {
    alignas(64) std::atomic<bool> owned{false};  // claimed by a live thread
    // Goroutines created through this queue (num_goroutine sums them); written by the owner.
    std::atomic<std::int64_t> created{0};
    std::uint64_t goid_next = 0, goid_end = 0;  // owner only
};

struct alignas(64) Worker : RunQueue {
    Scheduler* sched = nullptr;
    int id = 0;

    // Owner-only state.
    alignas(64) G* curg = nullptr;  // the G running now, nullptr on the scheduler stack
    ctx::fcontext_t g0 = nullptr;   // the scheduler stack's context while a G runs
    std::uint32_t schedtick = 0;
    // A G runs on this worker (set by execute; read by on_process_exit, ordered by membarrier).
    std::atomic<bool> in_g{false};
    bool ext_turn = false;          // the plain threads' queues go first at the next 61st round
    std::int64_t slice_start = 0;   // coarse_nanotime() when the time slice began; 0: not yet read
    std::uint32_t runnext_picks = 0;
    bool spinning = false;
    StackPool stacks;
    std::uint64_t goid_next = 0, goid_end = 0;  // a batch of goroutine ids (Go's goidcache)
    // Goroutines created and exited here (num_goroutine sums them); written by the owner only.
    std::atomic<std::int64_t> created{0};
    std::atomic<std::int64_t> exited{0};

    EhGlobals* eh = nullptr;        // this thread's caught-exception state
    G* prev = nullptr;              // the G that left in a direct switch
    bool start_direct = false;      // the G being switched to directly never ran

    // What the running G asked of the scheduler when it switched out.
    enum class Action : std::uint8_t { none, park, yield, yield_local, exit } action = Action::none;
    Unlock unlock;

    // Sleeping: the futex word is 0 while the worker intends to sleep; a waker sets it to 1.
    std::atomic<std::uint32_t> wake{0};
    bool idle = false;              // on the idle list; guarded by Scheduler::mu_
    Worker* idle_next = nullptr;    // guarded by Scheduler::mu_

    TimerHeap timers;

#if GORO_ASAN
    void* asan_fake = nullptr;
    const void* g0_bottom = nullptr;
    std::size_t g0_size = 0;
    std::atomic<char*> lsan_stack{nullptr};  // base of the running G's stack (lsan_at_exit)
#endif
#if GORO_TSAN
    void* tsan_g0 = nullptr;
#endif
};

// The worker this thread is, if any. Read only through current_worker(): the getter is not
// inlined so that a goroutine that migrated to another thread never sees a cached TLS address.
inline thread_local Worker* tls_worker = nullptr;
inline thread_local ThreadParker tls_parker;

// ExtHandle is a plain thread's claim on an ExtQueue. It is trivially destructible, so that
// it stays usable to the thread's last moment (another thread_local's destructor may call
// go()); ExtRelease, made when the ring is claimed, hands the ring back at thread exit.
struct ExtHandle {
    Scheduler* sched = nullptr;  // the scheduler q belongs to
    ExtQueue* q = nullptr;       // nullptr: this thread uses the global queue
    // No ring for this thread: it is exiting (handed back already), or it is a blocking-pool
    // thread, which readies one goroutine per call and would only hold a ring from main.
    bool no_ring = false;
};
inline thread_local ExtHandle tls_ext;
struct ExtRelease {
    ~ExtRelease();
};
inline thread_local ExtRelease tls_ext_release;

GORO_NOINLINE inline Worker* current_worker() noexcept {
    RuntimeSection rs;
    return tls_worker;
}
inline G* current_g() noexcept {
    RuntimeSection rs;
    Worker* w = current_worker();
    return w ? w->curg : nullptr;
}
// current_parker() is the goroutine running now, or this thread's parker.
GORO_NOINLINE inline Parker* current_parker() noexcept {
    RuntimeSection rs;
    Worker* w = tls_worker;
    if (w && w->curg) return w->curg;
    return &tls_parker;
}

// PlainState is a thread's standing in deadlock detection: whether it is counted among the live
// plain threads that used the runtime (Scheduler::nplain_). Trivially destructible, like
// ExtHandle, so that it stays usable to the thread's last moment; PlainRelease, made when the
// thread is counted, uncounts it at thread exit.
enum class PlainState : std::uint8_t {
    unseen,
    counted,
    other,  // a worker or a blocking-pool thread, or a plain thread past its PlainRelease
};
inline thread_local PlainState tls_plain = PlainState::unseen;
struct PlainRelease {
    ~PlainRelease();
};
inline thread_local PlainRelease tls_plain_release;

// BlockingPool runs blocking() calls on threads of their own (Go's Ms in system calls: goro keeps
// such calls off the workers rather than hand a P to another M). A call takes an idle thread, or
// a new one while the pool has fewer than max_threads (GORO_MAX_BLOCKING_THREADS, default Go's
// limit of 10,000 threads); beyond that it waits in the queue for a thread to finish its call.
// A thread idle for idle_timeout (10 s, the keep-alive of Tokio's blocking pool) exits, with no
// floor: the first call after a quiet spell pays for one thread (~30 us), nothing next to the
// spell, while a burst's threads do not stay for good. When no thread can be made
// (pthread_create fails), the call waits for one of the pool's threads; with none, the process
// ends as Go's does ("fatal error: newosproc").
//
// Deadlock detection counts the pool's threads among the runtime's and compares the total with
// the process's thread count in /proc (check_dead), so its count must be what /proc lists at
// that moment. A thread is counted from just before it is made (while a worker is busy
// submitting: no verdict is possible then) until it leaves serve(). One that left may or may not
// be listed still: the kernel drops a thread from /proc a little after it returns, even after
// pthread_join has returned. census() therefore reaps those first (joins them, and waits until
// /proc no longer lists them), and gen_ tells check_dead whether another left while it read.
class BlockingPool {
public:
    struct Limits {
        int max_threads;
        std::chrono::milliseconds idle_timeout;
    };
    BlockingPool();
    BlockingPool(const BlockingPool&) = delete;

    void submit(std::function<void()> job);
    // threads() is the number of threads serving calls, idle ones included.
    int threads();
    // census() reaps the threads that left and returns the number serving, or -1 when one that
    // left cannot be told gone (it has not ended within a second). gen is set to the number of
    // threads that ever left, as generation() returns it: unchanged, none left since.
    int census(std::uint64_t& gen);
    std::uint64_t generation();
    // limits() and set_limits() read and change the cap and the idle timeout (for tests).
    Limits limits();
    void set_limits(Limits l);

private:
    // Thread is a pool thread's record, made with it; once the thread left serve() it waits on
    // left_ to be reaped.
    struct Thread {
        BlockingPool* pool;
        pthread_t handle{};
        pid_t tid = 0;
        Thread* next = nullptr;
    };
    static void* thread_main(void* arg) noexcept;
    void serve(Thread* self);
    bool reap(Thread* list) noexcept;
    [[noreturn]] void fail_newosproc(int err) noexcept;

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;  // guarded by mu_
    int idle_ = 0;                            // threads waiting for a job; guarded by mu_
    int live_ = 0;                            // threads serving, idle or not; guarded by mu_
    Thread* left_ = nullptr;                  // left serve(), not reaped; guarded by mu_
    int reaping_ = 0;                         // taken off left_ by a reaper; guarded by mu_
    std::uint64_t gen_ = 0;                   // threads that ever left serve(); guarded by mu_
    Limits limits_;                           // guarded by mu_
};

class Scheduler {
public:
    static constexpr int max_procs = 256;

    Scheduler();
    Scheduler(const Scheduler&) = delete;

    // instance() is the process's runtime, made on first use and never destroyed: goroutines
    // may still be parked when main returns, exactly as in Go.
    static Scheduler& instance() noexcept {
        Scheduler* s = instance_.load(std::memory_order_acquire);
        return GORO_LIKELY(s != nullptr) ? *s : make_instance();
    }

    // spawn() makes a new G runnable (newproc).
    void spawn(G* g);
    // park() blocks the caller (a G or a thread) until ready(); see Unlock.
    void park(Unlock unlock);
    // ready() makes a parked G runnable, or wakes a parked thread (goready).
    void ready(Parker* p);
    // yield() puts the running G at the back of the global queue (Gosched).
    void yield();
    // yield_local() puts it at the back of its worker's queue, so that a G just readied into
    // runnext runs first (goyield, used by semaphore handoff).
    void yield_local();

    int gomaxprocs() const noexcept { return gomaxprocs_.load(std::memory_order_acquire); }
    int set_gomaxprocs(int n);
    std::size_t num_goroutine() const noexcept;

    // Timers: start() arms t (t->when, t->period, t->f set); stop() disarms it.
    void timer_start(Timer* t);
    bool timer_stop(Timer* t);

    // blocking work and I/O waits hold off deadlock detection while they are pending.
    void enter_blocking() noexcept { nblocking_.fetch_add(1, std::memory_order_acq_rel); }
    void exit_blocking() noexcept { nblocking_.fetch_sub(1, std::memory_order_acq_rel); }
    BlockingPool& blocking_pool() noexcept { return pool_; }

    std::size_t stack_size() const noexcept { return stacks_.stack_size(); }
    std::uint64_t sched_seed() const noexcept { return det_seed_; }

    // can_spin() tells a Mutex whether busy-waiting a little more may pay (sync_runtime_canSpin):
    // only a few rounds, only on a multicore machine with other workers running, and never
    // while the caller's worker has goroutines waiting to run.
    bool can_spin(int iter) const noexcept {
        static const unsigned ncpu = std::thread::hardware_concurrency();
        if (iter >= 4 || ncpu <= 1) return false;
        if (gomaxprocs() <= npidle_.load(std::memory_order_relaxed) +
                                nmspinning_.load(std::memory_order_relaxed) + 1)
            return false;
        Worker* w = current_worker();
        return !(w && w->curg && !runq_empty(w));
    }

private:
    friend struct Worker;
    static inline std::atomic<Scheduler*> instance_{nullptr};
    static Scheduler& make_instance();

    void start_workers_locked(int n);
    void worker_main(Worker* w);
    G* find_runnable(Worker* w);
    G* steal_work(Worker* w, bool& ran_timers);
    void prepare(Worker* w, G* g);
    void execute(Worker* w, G* g);
    G* direct_next(Worker* w);
    G* det_pick(Worker* w);
    static ctx::transfer_t on_top(ctx::transfer_t t) noexcept;
    void after_switch(Worker* w, G* g, ctx::fcontext_t from);
    void retire(Worker* w);
    void run_all_timers();
    int nactive() const noexcept;
    void ensure_started();

    // run queues
    static bool runq_empty(RunQueue* q) noexcept;
    void runq_put(RunQueue* q, G* g, bool next);
    bool runq_put_slow(RunQueue* q, G* g, std::uint32_t h, std::uint32_t t);
    static G* runq_get(Worker* w) noexcept;
    static G* runq_pop(RunQueue* q) noexcept;
    void runq_drain(Worker* w);
    static bool runq_empty_local(Worker* w) noexcept {
        return w->runq_head.load(std::memory_order_acquire) ==
               w->runq_tail.load(std::memory_order_relaxed);
    }
    static constexpr std::int64_t time_slice_ns = 10'000'000;  // Go's forcePreemptNS
#if GORO_ASAN || GORO_TSAN
    static constexpr std::uint32_t slice_check_mask = 0;
#else
    static constexpr std::uint32_t slice_check_mask = 15;
#endif
    static std::uint32_t runq_grab(RunQueue* v, G** batch, std::uint32_t start,
                                   bool steal_next) noexcept;
    G* runq_steal(Worker* w, RunQueue* v, bool steal_next) noexcept;
    void globrunq_put(G* g);
    G* globrunq_get_locked(Worker* w, std::uint32_t max);

    // plain threads' run queues
    friend struct ExtRelease;
    void put_plain(G* g, bool spawned);
    ExtQueue* ext_queue();
    ExtQueue* claim_ext();
    void release_ext(ExtQueue* q);
    bool ext_pending() const noexcept;
    G* ext_steal(Worker* w, bool one) noexcept;

    // idle workers
    void wakep();
    void wake_poller(std::int64_t when);
    void reset_spinning(Worker* w);
    bool remove_idle_locked(Worker* w) noexcept;
    void check_dead();
    static int process_threads() noexcept;
    static bool task_listed(pid_t tid) noexcept;
    static bool await_task_gone(pid_t tid) noexcept;
    void note_leaver() noexcept;
    bool leavers_gone() noexcept;
    friend class BlockingPool;   // process_threads(), for its fatal error
    friend struct PlainRelease;  // nplain_, the leavers, the pool
    void note_plain_thread() noexcept;

    void park_thread(Unlock unlock);
    void switch_out(G* g, Worker::Action a);
    std::uint64_t new_goid(std::uint64_t& next, std::uint64_t& end);

    static void g_entry(ctx::transfer_t t) noexcept;
    static void install_overflow_handler();
    static void on_segv(int sig, siginfo_t* info, void* uctx) noexcept;
    static inline struct sigaction prev_segv_ {};
    [[noreturn]] static void panic(G* g, const char* what) noexcept;

    StackAllocator stacks_;
    BlockingPool pool_;
    std::atomic<int> gomaxprocs_{0};
    std::atomic<int> nworkers_{0};                  // worker threads started, never shrinks
    Worker* workers_[max_procs] = {};
    std::atomic<bool> started_{false};
    std::atomic<bool> exiting_{false};              // the process is exiting: no G may start
    static constexpr std::int64_t exit_grace_ns = 100'000'000;

    Lock mu_;                                     // sched.lock
    GlobalRunQueue runq_;                         // guarded by mu_
    std::atomic<std::uint32_t> runq_len_{0};      // written under mu_
    Worker* idle_list_ = nullptr;                 // guarded by mu_
    std::atomic<int> npidle_{0};                  // written under mu_
    std::atomic<int> nretired_{0};                // workers parked beyond GOMAXPROCS; under mu_
    std::atomic<int> nmspinning_{0};

    std::atomic<Worker*> poller_{nullptr};        // the idle worker sleeping until a timer
    std::atomic<std::int64_t> poll_until_{0};

    static constexpr int max_ext = 64;
    std::atomic<int> next_ext_{0};                 // ext_[0, next_ext_) exist; grows under mu_
    ExtQueue* ext_[max_ext] = {};                  // plain threads' queues, never freed

    alignas(64) std::atomic<std::uint64_t> goid_gen_{1};
    std::atomic<std::int64_t> ext_created_{0};     // created by plain threads without a queue
    std::atomic<int> ntimers_{0};                  // pending timers, all heaps
    std::atomic<int> nblocking_{0};                // blocking() calls and I/O waits in flight
    std::atomic<int> nblocked_threads_{0};         // plain threads parked in park()
    std::atomic<int> nplain_{0};                   // live plain threads that used the runtime
    std::mutex leavers_mu_;                        // a leaf
    std::vector<pid_t> leavers_;                   // counted plain threads that left, maybe listed
    std::uint64_t det_seed_ = 0;                   // GORO_SCHED_SEED; 0: normal scheduling
    std::vector<G*> det_runnable_;                 // deterministic mode: the worker's alone

    static void on_process_exit(int status, void* self) noexcept;
    [[noreturn]] static void stop_for_exit(Worker* w) noexcept;
    bool quiescent_for_exit(const Worker* self) const noexcept;
#if GORO_ASAN
    void lsan_at_exit() noexcept;
    Lock lsan_mu_;
    G* lsan_gs_ = nullptr;                         // Gs that have a stack; guarded by lsan_mu_
#endif
};

// ---------------------------------------------------------------------------------------------
// Implementation.

inline BlockingPool::BlockingPool()
    : limits_{static_cast<int>(std::clamp<std::size_t>(
                  env_size("GORO_MAX_BLOCKING_THREADS", 10'000), 1, 1 << 30)),
              std::chrono::seconds(10)} {}

inline void BlockingPool::submit(std::function<void()> job) {
    std::unique_lock<std::mutex> g(mu_);
    jobs_.push_back(std::move(job));
    // idle_ still counts a thread that was notified but has not woken to take its job yet:
    // reuse idle threads only while there is one for every queued job. (Testing idle_ > 0
    // handed a burst of jobs to one notified thread, which then ran them one after another.)
    // At the cap the job waits for a thread to finish its own.
    if (static_cast<std::size_t>(idle_) >= jobs_.size() || live_ >= limits_.max_threads) {
        if (idle_ > 0) cv_.notify_one();
        return;
    }
    auto* t = new Thread{this};
    ++live_;
    pthread_t h;
    int err = ::pthread_create(&h, nullptr, &thread_main, t);
    if (err == 0) return;
    // No new thread (newosproc): the pool's threads will take the job in turn, if it has any.
    delete t;
    --live_;
    if (live_ == 0) fail_newosproc(err);
    if (idle_ > 0) cv_.notify_one();
}

inline void* BlockingPool::thread_main(void* arg) noexcept {
    auto* self = static_cast<Thread*>(arg);
    runtime_enter();  // the pool is runtime; the calls it runs are announced by blocking()
    self->pool->serve(self);
    runtime_leave();
    return nullptr;
}

inline void BlockingPool::serve(Thread* self) {
    tls_ext.no_ring = true;
    tls_plain = PlainState::other;
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
        while (jobs_.empty()) {
            ++idle_;
            bool expired = cv_.wait_for(g, limits_.idle_timeout) == std::cv_status::timeout;
            --idle_;
            if (expired && jobs_.empty()) {
                // Leave: from now on census() must reap this thread before trusting /proc.
                --live_;
                ++gen_;
                self->handle = ::pthread_self();
                self->tid = static_cast<pid_t>(::syscall(SYS_gettid));
                // Reap those that left before (their stacks are freed only once joined), so
                // that at most the last one waits unjoined while the pool is quiet.
                Thread* earlier = left_;
                for (Thread* t = earlier; t; t = t->next) ++reaping_;
                self->next = nullptr;
                left_ = self;
                g.unlock();
                reap(earlier);
                return;
            }
        }
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        g.unlock();
        runtime_leave();
        job();
        runtime_enter();
        // An M going idle (mput's checkdead): the call's exit_blocking() may be the last thing
        // that happens, after a plain thread's own check saw the call in flight. Dekker with it,
        // as wakep with a worker going idle.
        Scheduler& s = Scheduler::instance();
        store_load_barrier();
        if (s.nblocked_threads_.load(std::memory_order_acquire) > 0) s.check_dead();
        g.lock();
    }
}

// reap() joins the threads of list, which have left serve(), and waits until /proc no longer
// lists them (the kernel wakes a joiner when it clears the thread's tid, and drops the thread a
// little later). One that does not end within a second (a thread_local destructor of the call's
// code blocks) goes back on left_ and makes the result false. The wait is bounded as well: the
// tid could be reused by a new thread once the old one is gone (pid_max may be 32768).
inline bool BlockingPool::reap(Thread* list) noexcept {
    bool all = true;
    int done = 0;
    Thread* back = nullptr;
    while (list) {
        Thread* t = list;
        list = t->next;
        ++done;
        timespec until;
        ::clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (::pthread_timedjoin_np(t->handle, nullptr, &until) != 0) {
            all = false;
            t->next = back;
            back = t;
            continue;
        }
        Scheduler::await_task_gone(t->tid);
        delete t;
    }
    if (done == 0) return true;
    std::lock_guard<std::mutex> g(mu_);
    reaping_ -= done;
    while (back) {
        Thread* t = back;
        back = t->next;
        t->next = left_;
        left_ = t;
    }
    return all;
}

inline int BlockingPool::census(std::uint64_t& gen) {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
        if (Thread* list = left_) {
            left_ = nullptr;
            for (Thread* t = list; t; t = t->next) ++reaping_;
            g.unlock();
            bool all = reap(list);
            g.lock();
            if (!all) return -1;
        } else if (reaping_ > 0) {
            // A thread that is leaving reaps earlier ones: that takes microseconds.
            g.unlock();
            std::this_thread::yield();
            g.lock();
        } else {
            gen = gen_;
            return live_;
        }
    }
}

inline std::uint64_t BlockingPool::generation() {
    std::lock_guard<std::mutex> g(mu_);
    return gen_;
}

inline int BlockingPool::threads() {
    std::lock_guard<std::mutex> g(mu_);
    return live_;
}

inline BlockingPool::Limits BlockingPool::limits() {
    std::lock_guard<std::mutex> g(mu_);
    return limits_;
}

inline void BlockingPool::set_limits(Limits l) {
    std::lock_guard<std::mutex> g(mu_);
    limits_.max_threads = std::max(l.max_threads, 1);
    limits_.idle_timeout = l.idle_timeout;
    cv_.notify_all();  // idle threads wait again, with the new timeout
}

// fail_newosproc() ends the process when the pool has no thread and cannot make one, in Go's
// words (newosproc in os_linux.go).
[[noreturn]] inline void BlockingPool::fail_newosproc(int err) noexcept {
    int have = Scheduler::process_threads();
    std::fflush(stdout);
    std::fprintf(stderr, "runtime: failed to create new OS thread (have %d already; errno=%d)\n",
                 have, err);
    if (err == EAGAIN)
        std::fprintf(stderr, "runtime: may need to increase max user processes (ulimit -u)\n");
    fatal("newosproc");
}

inline Scheduler& Scheduler::make_instance() {
    static Lock m;
    std::lock_guard<Lock> g(m);
    Scheduler* s = instance_.load(std::memory_order_acquire);
    if (!s) {
        s = new Scheduler();
        instance_.store(s, std::memory_order_release);
    }
    return *s;
}

inline int default_gomaxprocs() noexcept {
    if (const char* e = std::getenv("GOMAXPROCS")) {
        int n = std::atoi(e);
        if (n > 0) return std::min(n, Scheduler::max_procs);
    }
    cpu_set_t set;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return std::min(n, Scheduler::max_procs);
    }
    return std::max(1, std::min(static_cast<int>(std::thread::hardware_concurrency()),
                                Scheduler::max_procs));
}

// Deterministic mode (GORO_SCHED_SEED=<n>, or "random" for a seed from the clock): one worker,
// and every time it picks a goroutine to run it draws uniformly among all runnable ones from a
// generator seeded with n, which also drives select's choices. A program whose goroutines
// interact only with each other then runs the same interleaving for the same seed, and another
// one for another seed: a failure found under a random seed replays from the seed printed at
// start. Timers, plain threads and blocking() still follow the clock.
inline Scheduler::Scheduler() {
    gomaxprocs_.store(default_gomaxprocs());
    if (const char* e = std::getenv("GORO_SCHED_SEED"); e && *e) {
        det_seed_ = std::strcmp(e, "random") == 0
                        ? static_cast<std::uint64_t>(nanotime()) % 1000000007 + 1
                        : std::strtoull(e, nullptr, 10);
        if (det_seed_ == 0) fatal("GORO_SCHED_SEED must be a positive integer or \"random\"");
        gomaxprocs_.store(1);
        std::fprintf(stderr, "goro: deterministic scheduling, GORO_SCHED_SEED=%llu\n",
                     static_cast<unsigned long long>(det_seed_));
    }
}

inline void Scheduler::ensure_started() {
    if (GORO_LIKELY(started_.load(std::memory_order_acquire))) return;
    std::lock_guard<Lock> g(mu_);
    if (started_.load(std::memory_order_relaxed)) return;
    install_overflow_handler();
    // Exit handlers run in reverse order of registration: this one runs before the
    // destructors of every static object constructed before the runtime started.
    ::on_exit(&Scheduler::on_process_exit, this);
    start_workers_locked(gomaxprocs());
    started_.store(true, std::memory_order_release);
}

// start_workers_locked() makes workers [nworkers_, n) and their threads. They start idle.
inline void Scheduler::start_workers_locked(int n) {
    int first = nworkers_.load(std::memory_order_relaxed);
    for (int i = first; i < n; ++i) {
        auto* w = new Worker();
        w->sched = this;
        w->id = i;
        for (auto& slot : w->runq) slot.store(nullptr, std::memory_order_relaxed);
        w->idle = true;
        w->idle_next = idle_list_;
        idle_list_ = w;
        npidle_.fetch_add(1, std::memory_order_relaxed);
        workers_[i] = w;
    }
    // Threads start once every worker they may steal from exists.
    if (n > first) nworkers_.store(n, std::memory_order_release);
    for (int i = first; i < n; ++i) {
        Worker* w = workers_[i];
        std::thread([this, w] { worker_main(w); }).detach();
    }
}

// nactive() is the number of workers that run goroutines: GOMAXPROCS, once they exist.
inline int Scheduler::nactive() const noexcept {
    return std::min(gomaxprocs(), nworkers_.load(std::memory_order_acquire));
}

// new_goid() takes the next id of a batch (Go's goidcache), refilling it from goid_gen_.
inline std::uint64_t Scheduler::new_goid(std::uint64_t& next, std::uint64_t& end) {
    if (next == end) {
        constexpr std::uint64_t batch = 16;
        next = goid_gen_.fetch_add(batch, std::memory_order_relaxed);
        end = next + batch;
    }
    return next++;
}

inline void Scheduler::spawn(G* g) {
    hb_release(g);  // acquired when g starts (g_entry)
    RuntimeSection rs;
    ensure_started();
    Worker* w = current_worker();
    if (w && w->sched != this) w = nullptr;
    if (w) {
        g->id = new_goid(w->goid_next, w->goid_end);
        w->created.store(w->created.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        runq_put(w, g, true);
    } else {
        put_plain(g, true);
    }
    wakep();
}

// put_plain() queues g from a plain thread: on the thread's own queue if it has one, else on
// the global queue. A new G (spawned) also gets its id and is counted. Kept out of line so
// that the workers' paths through ready() and spawn() stay small.
GORO_NOINLINE inline void Scheduler::put_plain(G* g, bool spawned) {
    if (GORO_UNLIKELY(tls_plain == PlainState::unseen)) note_plain_thread();
    if (ExtQueue* q = ext_queue()) {
        if (spawned) {
            g->id = new_goid(q->goid_next, q->goid_end);
            q->created.store(q->created.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
        }
        runq_put(q, g, false);
    } else {
        if (spawned) {
            g->id = goid_gen_.fetch_add(1, std::memory_order_relaxed);
            ext_created_.fetch_add(1, std::memory_order_relaxed);
        }
        globrunq_put(g);
    }
}

inline std::size_t Scheduler::num_goroutine() const noexcept {
    RuntimeSection rs;
    std::int64_t n = ext_created_.load(std::memory_order_relaxed);
    int ne = next_ext_.load(std::memory_order_acquire);
    for (int i = 0; i < ne; ++i) n += ext_[i]->created.load(std::memory_order_relaxed);
    int nw = nworkers_.load(std::memory_order_acquire);
    for (int i = 0; i < nw; ++i) {
        n += workers_[i]->created.load(std::memory_order_relaxed);
        n -= workers_[i]->exited.load(std::memory_order_relaxed);
    }
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// ---- run queues (runqput, runqget, runqgrab, runqsteal, globrunqput, globrunqget) ----

inline bool Scheduler::runq_empty(RunQueue* q) noexcept {
    for (;;) {
        std::uint32_t h = q->runq_head.load(std::memory_order_acquire);
        std::uint32_t t = q->runq_tail.load(std::memory_order_acquire);
        G* next = q->runnext.load(std::memory_order_acquire);
        if (q->runq_tail.load(std::memory_order_acquire) == t) return h == t && next == nullptr;
    }
}

inline void Scheduler::runq_put(RunQueue* q, G* g, bool next) {
    if (next) {
        g = q->runnext.exchange(g, std::memory_order_acq_rel);
        if (!g) return;
    }
    for (;;) {
        std::uint32_t h = q->runq_head.load(std::memory_order_acquire);
        std::uint32_t t = q->runq_tail.load(std::memory_order_relaxed);
        if (t - h < RunQueue::runq_size) {
            q->runq[t % RunQueue::runq_size].store(g, std::memory_order_relaxed);
            q->runq_tail.store(t + 1, std::memory_order_release);
            return;
        }
        if (runq_put_slow(q, g, h, t)) return;
    }
}

// runq_put_slow() moves g and half of the full queue q to the global queue.
inline bool Scheduler::runq_put_slow(RunQueue* q, G* g, std::uint32_t h, std::uint32_t t) {
    constexpr std::uint32_t n = RunQueue::runq_size / 2;
    G* batch[n + 1];
    for (std::uint32_t i = 0; i < n; ++i)
        batch[i] = q->runq[(h + i) % RunQueue::runq_size].load(std::memory_order_relaxed);
    if (!q->runq_head.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return false;
    (void)t;
    batch[n] = g;
    std::lock_guard<Lock> lk(mu_);
    runq_.push(batch, n + 1);
    runq_len_.fetch_add(n + 1, std::memory_order_release);
    return true;
}

// runq_get() takes the next G of w's own queue. A G in runnext runs first and inherits the
// current time slice (runqget's inheritTime), so a chain of hand-offs (a ping-pong pair) shares
// one slice; once it has used 10ms, the ring's head goes first with a fresh slice, or, if the
// ring is empty, the global queue (it returns nullptr, and find_runnable looks there). Go ends a
// slice by preemption; goro, which has none, at the next scheduling point: without this a
// ping-pong pair kept its worker for good (TestPingPongHog).
inline G* Scheduler::runq_get(Worker* w) noexcept {
    G* next = w->runnext.load(std::memory_order_relaxed);
    if (next) {
        // The clock is read every 16th pick (every pick in sanitizer builds, where a hand-off
        // can take milliseconds): a chain overruns its slice by 15 hand-offs at most. Reading
        // it at every pick cost unbuffered ping-pong 14%.
        // A slice's start is stamped lazily, at its first look at the clock (slice_start 0:
        // a new slice began, see below), so that taking a G from a queue reads no clock.
        bool inherit = true;
        if ((++w->runnext_picks & slice_check_mask) == 0) {
            std::int64_t now = coarse_nanotime();
            if (w->slice_start == 0) w->slice_start = now;
            else inherit = now - w->slice_start < time_slice_ns;
        }
        if (!inherit && runq_empty_local(w)) {
            if (w->sched->runq_len_.load(std::memory_order_relaxed) > 0 ||
                w->sched->ext_pending()) {
                // The slice is over, and the decision must hold until find_runnable() has
                // looked at those queues: called from direct_next(), whose nullptr sends the
                // worker through the loop, the next call would otherwise skip the clock and
                // hand runnext back, extending the chain by another 15 picks (in
                // TestPingPongHog the CPU-heavy pair's count rose from ~3.5x the light
                // pair's to ~5.5x, at times 20x). Make the next pick look at the clock again.
                w->runnext_picks |= slice_check_mask;
                return nullptr;
            }
            inherit = true;  // nothing else waits here: a new slice for the chain
            w->slice_start = 0;
        }
        if (inherit && w->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel))
            return next;
    }
    G* g = runq_pop(w);
    if (g) {
        w->slice_start = 0;  // g starts a new slice
        // The G behind it in the ring is likely next: start fetching it now, while g runs. A
        // queued G is usually cold (made long ago, or by another worker), and its first touch
        // (prepare, direct_next) was the worker's single largest stall in skynet.
        std::uint32_t h = w->runq_head.load(std::memory_order_relaxed);
        if (h != w->runq_tail.load(std::memory_order_relaxed))
            prefetch_for_write(w->runq[h % RunQueue::runq_size].load(std::memory_order_relaxed));
    }
    return g;
}

// runq_pop() takes the G at q's head: its owner's way in runq_get, anyone's in ext_steal.
inline G* Scheduler::runq_pop(RunQueue* q) noexcept {
    for (;;) {
        std::uint32_t h = q->runq_head.load(std::memory_order_acquire);
        std::uint32_t t = q->runq_tail.load(std::memory_order_acquire);
        if (t == h) return nullptr;
        G* g = q->runq[h % RunQueue::runq_size].load(std::memory_order_relaxed);
        if (q->runq_head.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel)) return g;
    }
}

// runq_grab() takes half of v's queue into batch[start...]; with steal_next it may take runnext.
inline std::uint32_t Scheduler::runq_grab(RunQueue* v, G** batch, std::uint32_t start,
                                          bool steal_next) noexcept {
    for (;;) {
        std::uint32_t h = v->runq_head.load(std::memory_order_acquire);
        std::uint32_t t = v->runq_tail.load(std::memory_order_acquire);
        std::uint32_t n = t - h;
        n -= n / 2;
        if (n == 0) {
            if (steal_next) {
                G* next = v->runnext.load(std::memory_order_acquire);
                if (next) {
                    // The victim is probably about to run it (it just readied it and is parking):
                    // give it a moment before taking the G away from its warm cache. Sleep, as
                    // Go does (usleep(3), ~50us with timer slack), rather than poll: polling the
                    // victim's runnext line would slow every hand-off the victim makes.
                    timespec ts{0, 3000};
                    ::nanosleep(&ts, nullptr);
                    if (v->runnext.compare_exchange_strong(next, nullptr,
                                                           std::memory_order_acq_rel)) {
                        batch[start % Worker::runq_size] = next;
                        return 1;
                    }
                }
            }
            return 0;
        }
        if (n > Worker::runq_size / 2) continue;  // inconsistent h and t: retry
        for (std::uint32_t i = 0; i < n; ++i)
            batch[(start + i) % Worker::runq_size] =
                v->runq[(h + i) % Worker::runq_size].load(std::memory_order_relaxed);
        if (v->runq_head.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return n;
    }
}

// runq_steal() moves half of v's queue to w's and returns one G to run.
inline G* Scheduler::runq_steal(Worker* w, RunQueue* v, bool steal_next) noexcept {
    std::uint32_t t = w->runq_tail.load(std::memory_order_relaxed);
    G* batch[Worker::runq_size];
    std::uint32_t n = runq_grab(v, batch, 0, steal_next);
    if (n == 0) return nullptr;
    G* g = batch[n - 1];
    for (std::uint32_t i = 0; i + 1 < n; ++i)
        w->runq[(t + i) % Worker::runq_size].store(batch[i], std::memory_order_relaxed);
    if (n > 1) w->runq_tail.store(t + n - 1, std::memory_order_release);
    return g;
}

inline void Scheduler::globrunq_put(G* g) {
    std::lock_guard<Lock> lk(mu_);
    runq_.push(&g, 1);
    runq_len_.fetch_add(1, std::memory_order_release);
}

// globrunq_get_locked() takes a fair share of the global queue: one G to run, the rest into
// w's local queue (globrunqget).
inline G* Scheduler::globrunq_get_locked(Worker* w, std::uint32_t max) {
    std::uint32_t len = runq_len_.load(std::memory_order_relaxed);
    if (len == 0) return nullptr;
    std::uint32_t n = len / static_cast<std::uint32_t>(gomaxprocs()) + 1;
    n = std::min({n, len, max, Worker::runq_size / 2});
    G* g = runq_.pop();
    for (std::uint32_t i = 1; i < n; ++i) {
        G* x = runq_.pop();
        std::uint32_t t = w->runq_tail.load(std::memory_order_relaxed);
        w->runq[t % Worker::runq_size].store(x, std::memory_order_relaxed);
        w->runq_tail.store(t + 1, std::memory_order_release);
    }
    runq_len_.fetch_sub(n, std::memory_order_release);
    w->slice_start = 0;  // g starts a new time slice (runq_get)
    return g;
}

// ---- plain threads' run queues ----

// ext_queue() is the calling plain thread's run queue, claimed on first use; nullptr when it
// has none (the global queue serves it): all max_ext are taken, the thread is exiting, or
// deterministic mode, whose one worker gathers runnable Gs from the global queue only.
inline ExtQueue* Scheduler::ext_queue() {
    ExtHandle& h = tls_ext;
    if (GORO_LIKELY(h.sched == this)) return h.q;
    if (h.sched || h.no_ring || det_seed_) return nullptr;
    h.sched = this;
    h.q = claim_ext();
    if (h.q) (void)&tls_ext_release;  // constructs it: its destructor runs at thread exit
    return h.q;
}

inline ExtQueue* Scheduler::claim_ext() {
    int n = next_ext_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) {
        bool free = false;
        if (!ext_[i]->owned.load(std::memory_order_relaxed) &&
            ext_[i]->owned.compare_exchange_strong(free, true, std::memory_order_acq_rel))
            return ext_[i];
    }
    if (n == max_ext) return nullptr;
    auto* q = new (std::nothrow) ExtQueue;
    if (!q) return nullptr;
    q->owned.store(true, std::memory_order_relaxed);
    {
        std::lock_guard<Lock> lk(mu_);
        n = next_ext_.load(std::memory_order_relaxed);
        if (n < max_ext) {
            ext_[n] = q;
            next_ext_.store(n + 1, std::memory_order_release);
            return q;
        }
    }
    delete q;
    return nullptr;
}

// release_ext() hands q back when its thread exits. What it still holds stays there: the
// workers look at every queue that exists, owned or not, and the next owner pushes behind it.
inline void Scheduler::release_ext(ExtQueue* q) {
    RuntimeSection rs;
    q->owned.store(false, std::memory_order_release);
}

inline ExtRelease::~ExtRelease() {
    ExtHandle& h = tls_ext;
    h.no_ring = true;  // a go() later in this thread's exit uses the global queue
    if (h.q) h.sched->release_ext(h.q);
    h.q = nullptr;
    h.sched = nullptr;
}

// ext_pending() tells whether some plain thread's queue holds a G.
inline bool Scheduler::ext_pending() const noexcept {
    int n = next_ext_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        if (!runq_empty(ext_[i])) return true;
    return false;
}

// ext_steal() takes work from the plain threads' queues, starting at a random one: half a
// queue into w's (which must be empty), or with `one` a single G, leaving w's queue as it is.
inline G* Scheduler::ext_steal(Worker* w, bool one) noexcept {
    int n = next_ext_.load(std::memory_order_acquire);
    if (n == 0) return nullptr;
    std::uint32_t start = n == 1 ? 0 : fastrandn(static_cast<std::uint32_t>(n));
    for (int k = 0; k < n; ++k) {
        ExtQueue* q = ext_[(start + k) % n];
        if (runq_empty(q)) continue;
        if (G* g = one ? runq_pop(q) : runq_steal(w, q, false)) {
            w->slice_start = 0;  // g starts a new time slice (runq_get)
            return g;
        }
    }
    return nullptr;
}

// ---- idle workers (wakep, resetspinning, pidleget) ----

inline bool Scheduler::remove_idle_locked(Worker* w) noexcept {
    if (!w->idle) return false;
    for (Worker** p = &idle_list_; *p; p = &(*p)->idle_next) {
        if (*p == w) {
            *p = w->idle_next;
            break;
        }
    }
    w->idle = false;
    npidle_.fetch_sub(1, std::memory_order_relaxed);
    return true;
}

// wakep() wakes one idle worker to spin for work, unless one is spinning already.
inline void Scheduler::wakep() {
    // The caller has just published work; a worker going idle publishes itself and then looks
    // for work. Each must see the other's write: order our store before our load.
    store_load_barrier();
    if (npidle_.load(std::memory_order_acquire) == 0) return;
    int zero = 0;
    if (nmspinning_.load(std::memory_order_acquire) != 0 ||
        !nmspinning_.compare_exchange_strong(zero, 1, std::memory_order_acq_rel))
        return;
    Worker* w;
    {
        std::lock_guard<Lock> lk(mu_);
        w = idle_list_;
        if (w) {
            idle_list_ = w->idle_next;
            w->idle = false;
            npidle_.fetch_sub(1, std::memory_order_relaxed);
            w->spinning = true;
        }
    }
    if (!w) {
        nmspinning_.fetch_sub(1, std::memory_order_acq_rel);
        return;
    }
    w->wake.store(1, std::memory_order_release);
    futex_wake(&w->wake);
}

inline void Scheduler::reset_spinning(Worker* w) {
    w->spinning = false;
    if (nmspinning_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        npidle_.load(std::memory_order_acquire) > 0)
        wakep();
}

// wake_poller() makes sure some worker will wake up by `when` to run a timer (wakeNetPoller).
inline void Scheduler::wake_poller(std::int64_t when) {
    Worker* p = poller_.load(std::memory_order_acquire);
    if (p) {
        if (when < poll_until_.load(std::memory_order_acquire)) {
            p->wake.store(1, std::memory_order_release);
            futex_wake(&p->wake);
        }
        return;
    }
    wakep();
}

// ---- the scheduling loop (schedule, findrunnable, execute) ----

inline void Scheduler::worker_main(Worker* w) {
    runtime_enter();  // the scheduling loop is runtime through and through, for good
    tls_worker = w;
    // The SIGSEGV handler must run somewhere other than the overflowed goroutine stack.
    stack_t alt{};
    alt.ss_size = 64 * 1024;
    alt.ss_sp = ::mmap(nullptr, alt.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (alt.ss_sp != MAP_FAILED) ::sigaltstack(&alt, nullptr);
    w->eh = eh_globals();
    if (det_seed_) seed_fastrand(det_seed_);
#if GORO_TSAN
    w->tsan_g0 = __tsan_get_current_fiber();
#endif
    // A new worker starts on the idle list: like any idle worker it runs once woken, else
    // deadlock detection could count it idle while it runs a goroutine.
    while (w->wake.load(std::memory_order_acquire) == 0) futex_wait(&w->wake, 0);
    {
        std::lock_guard<Lock> lk(mu_);
        remove_idle_locked(w);
    }
    for (;;) {
        G* g = find_runnable(w);
        if (w->spinning) reset_spinning(w);
        execute(w, g);
    }
}

inline G* Scheduler::steal_work(Worker* w, bool& ran_timers) {
    constexpr int tries = 4;
    for (int i = 0; i < tries; ++i) {
        bool last = i == tries - 1;
        int n = nactive();
        std::uint32_t start = fastrandn(static_cast<std::uint32_t>(n));
        for (int k = 0; k < n; ++k) {
            Worker* v = workers_[(start + k) % n];
            if (v == w) continue;
            if (last && v->timers.next() != TimerHeap::never) {
                if (v->timers.run_due(ntimers_) > 0) {
                    ran_timers = true;
                    if (G* g = runq_get(w)) return g;
                }
            }
            if (!runq_empty(v))
                if (G* g = runq_steal(w, v, last)) return g;
        }
    }
    return nullptr;
}

inline G* Scheduler::find_runnable(Worker* w) {
    for (;;) {
        if (GORO_UNLIKELY(exiting_.load(std::memory_order_relaxed))) stop_for_exit(w);
        if (w->id >= gomaxprocs()) {
            retire(w);
            continue;
        }
        w->timers.run_due(ntimers_);
        if (det_seed_) {
            if (G* g = det_pick(w)) return g;
        } else if (++w->schedtick % 61 == 0) {
            // Every 61st round, look at the global queue and the plain threads' queues first
            // so that they cannot starve behind local work, and at the other workers' timers,
            // in case their owners are busy in long goroutines. The two kinds of queue take
            // turns at going first: with the global one always first, a goroutine yielding in
            // a loop (always back in the global queue) kept a plain thread's goroutine waiting
            // for good on a worker whose own queue never emptied.
            run_all_timers();
            bool ext_first = w->ext_turn = !w->ext_turn;
            if (ext_first)
                if (G* g = ext_steal(w, true)) return g;
            if (runq_len_.load(std::memory_order_acquire) > 0) {
                std::lock_guard<Lock> lk(mu_);
                if (G* g = globrunq_get_locked(w, 1)) return g;
            }
            if (!ext_first)
                if (G* g = ext_steal(w, true)) return g;
        }
        if (G* g = runq_get(w)) return g;
        // runq_get() came back empty-handed: w's ring is empty (runnext may hold a G whose
        // chain used up its slice), so a steal can fill it. The plain threads' queues come
        // before the global one, as a P's own queue does in Go, where main is a goroutine and
        // its Gs are local: otherwise a goroutine that yields (to the global queue) would be
        // picked again and again before those a plain thread started.
        if (G* g = ext_steal(w, false)) return g;
        if (runq_len_.load(std::memory_order_acquire) > 0) {
            std::lock_guard<Lock> lk(mu_);
            if (G* g = globrunq_get_locked(w, Worker::runq_size)) return g;
        }

        // Spin: steal, but only while spinners are fewer than half the busy workers.
        int procs = gomaxprocs();
        if (w->spinning || 2 * nmspinning_.load(std::memory_order_acquire) <
                               procs - npidle_.load(std::memory_order_acquire)) {
            if (!w->spinning) {
                w->spinning = true;
                nmspinning_.fetch_add(1, std::memory_order_acq_rel);
            }
            bool ran_timers = false;
            if (G* g = steal_work(w, ran_timers)) return g;
            if (ran_timers) continue;
        }

        // Nothing to do: publish ourselves idle, then look once more (the wakep handshake).
        w->wake.store(0, std::memory_order_relaxed);
        bool was_spinning;
        {
            std::lock_guard<Lock> lk(mu_);
            if (G* g = globrunq_get_locked(w, Worker::runq_size)) return g;
            if (w->id >= gomaxprocs()) continue;
            // Once on the idle list, wakep() may write w->spinning: read it before.
            was_spinning = w->spinning;
            w->spinning = false;
            w->idle = true;
            w->idle_next = idle_list_;
            idle_list_ = w;
            npidle_.fetch_add(1, std::memory_order_acq_rel);
        }
        if (was_spinning) nmspinning_.fetch_sub(1, std::memory_order_acq_rel);
        store_load_barrier();
        bool work = runq_len_.load(std::memory_order_acquire) > 0 || ext_pending();
        std::int64_t next_timer = TimerHeap::never;
        int n = nactive();
        for (int i = 0; i < n && !work; ++i) {
            work = !runq_empty(workers_[i]);
            next_timer = std::min(next_timer, workers_[i]->timers.next());
        }
        if (work || (next_timer != TimerHeap::never && next_timer <= nanotime())) {
            {
                std::lock_guard<Lock> lk(mu_);
                // If a waker took us off the idle list already, it made us spinning.
                if (remove_idle_locked(w) && was_spinning) {
                    w->spinning = true;
                    nmspinning_.fetch_add(1, std::memory_order_acq_rel);
                }
            }
            run_all_timers();
            continue;
        }
        if (nblocked_threads_.load(std::memory_order_acquire) > 0) check_dead();

        Worker* none = nullptr;
        if (next_timer != TimerHeap::never && poller_.compare_exchange_strong(none, w)) {
            poll_until_.store(next_timer, std::memory_order_release);
            // Recheck after publishing: a timer added since would have seen no poller.
            std::int64_t again = TimerHeap::never;
            for (int i = 0; i < n; ++i) again = std::min(again, workers_[i]->timers.next());
            if (again >= next_timer)
                futex_wait(&w->wake, 0, Clock::time_point(std::chrono::nanoseconds(next_timer)));
            poller_.store(nullptr, std::memory_order_release);
        } else {
            futex_wait(&w->wake, 0);
        }
        {
            std::lock_guard<Lock> lk(mu_);
            remove_idle_locked(w);
        }
        run_all_timers();
    }
}

inline void Scheduler::run_all_timers() {
    if (ntimers_.load(std::memory_order_acquire) == 0) return;
    int n = nactive();
    for (int i = 0; i < n; ++i) workers_[i]->timers.run_due(ntimers_);
}

// runq_drain() moves every G of w's queue, runnext included, to the global queue (p.destroy):
// the mechanism, without runq_get's time-slice policy, which may leave runnext where it is.
inline void Scheduler::runq_drain(Worker* w) {
    G* batch[RunQueue::runq_size + 1];
    std::uint32_t n = 0;
    while (G* g = runq_pop(w)) batch[n++] = g;
    if (G* g = w->runnext.exchange(nullptr, std::memory_order_acq_rel)) batch[n++] = g;
    if (n == 0) return;
    std::lock_guard<Lock> lk(mu_);
    runq_.push(batch, n);
    runq_len_.fetch_add(n, std::memory_order_release);
}

// retire() parks a worker beyond GOMAXPROCS until set_gomaxprocs() grows again; its work and
// timers go to the others first. Nobody looks at a retired worker's queue (steal_work stops at
// nactive()), so nothing may stay there.
inline void Scheduler::retire(Worker* w) {
    {
        std::lock_guard<Lock> lk(mu_);
        remove_idle_locked(w);
    }
    if (w->spinning) reset_spinning(w);
    runq_drain(w);
    w->timers.move_all_to(workers_[0]->timers);
    wakep();
    {
        // Only now does this worker hold no goroutine at all: deadlock detection may count it.
        std::lock_guard<Lock> lk(mu_);
        nretired_.fetch_add(1, std::memory_order_relaxed);
    }
    if (nblocked_threads_.load(std::memory_order_acquire) > 0) check_dead();
    while (w->id >= gomaxprocs()) {
        w->wake.store(0, std::memory_order_relaxed);
        if (w->id >= gomaxprocs()) futex_wait(&w->wake, 0);
    }
    std::lock_guard<Lock> lk(mu_);
    nretired_.fetch_sub(1, std::memory_order_relaxed);
}

inline int Scheduler::set_gomaxprocs(int n) {
    RuntimeSection rs;
    if (n < 1 || det_seed_) return gomaxprocs();  // as Go: n < 1 only queries
    n = std::min(n, max_procs);
    int old;
    {
        std::lock_guard<Lock> lk(mu_);
        old = gomaxprocs_.exchange(n, std::memory_order_acq_rel);
        if (started_.load(std::memory_order_relaxed)) {
            start_workers_locked(n);
            for (int i = n; i < nworkers_.load(std::memory_order_relaxed); ++i)
                remove_idle_locked(workers_[i]);
        }
    }
    int nw = nworkers_.load(std::memory_order_acquire);
    for (int i = 0; i < nw; ++i) {  // retirees retire, returners return; spare wake-ups are free
        workers_[i]->wake.store(1, std::memory_order_release);
        futex_wake(&workers_[i]->wake);
    }
    return old;
}

// ---- switching ----
//
// A G leaves the CPU in one of two ways. Through the scheduler stack (g0): jump there, and the
// scheduling loop acts on what the G asked (after_switch) and picks the next G. Or, when the
// next G is already known to be local (runnext or the local queue) and nothing else is due,
// directly: ontop_fcontext jumps to the next G and runs after_switch for the previous one on
// the next G's stack before it continues. The direct way halves the jumps of a park/ready
// handoff. Every 8th switch still goes through the loop, so timers and the global queue are
// looked at; sanitizer builds always take the loop, whose switches they are told about.

// prepare() gives a G that never ran its stack and first context.
inline void Scheduler::prepare(Worker* w, G* g) {
    try {
        g->stack = w->stacks.get(stacks_);
    } catch (const std::bad_alloc&) {
        fatal("out of memory allocating goroutine stack (address space exhausted)");
    }
    g->context = ctx::make_fcontext(g->stack.top(), g->stack.usable(), &g_entry);
#if GORO_ASAN
    {
        std::lock_guard<Lock> l(lsan_mu_);
        g->lsan_next = lsan_gs_;
        if (lsan_gs_) lsan_gs_->lsan_prev = g;
        lsan_gs_ = g;
    }
#endif
#if GORO_TSAN
    // TSan counts fibers as threads (at most 8,128 alive, with a quarantine on reuse): a fiber
    // belongs to a stack and is recycled with it, rather than made per goroutine.
    if (!g->stack.tsan_fiber) g->stack.tsan_fiber = __tsan_create_fiber(0);
#endif
}

inline void Scheduler::execute(Worker* w, G* g) {
    // The exit handshake (on_process_exit): either its membarrier makes this store visible
    // to it, or this worker sees exiting_ and stops.
    w->in_g.store(true, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (GORO_UNLIKELY(exiting_.load(std::memory_order_relaxed))) stop_for_exit(w);
    if (GORO_UNLIKELY(!g->stack)) prepare(w, g);
    w->curg = g;
    g->m = w;
    ++w->schedtick;
#if GORO_ASAN
    // Paired with lsan_at_exit: either it sees this stack as running or this worker sees that
    // exit began, and then stops for good.
    w->lsan_stack.store(g->stack.base, std::memory_order_seq_cst);
    if (GORO_UNLIKELY(exiting_.load(std::memory_order_seq_cst))) stop_for_exit(w);
    __sanitizer_start_switch_fiber(&w->asan_fake, g->stack.bottom(), g->stack.usable());
#endif
    ctx::fcontext_t to = g->context;
#if GORO_TSAN
    // From here TSan counts accesses to g's fiber, which may not be in the runtime: none more.
    __tsan_switch_to_fiber(g->stack.tsan_fiber, tsan_switch_flags);
#endif
    ctx::transfer_t t = ctx::jump_fcontext(to, w);
#if GORO_ASAN
    __sanitizer_finish_switch_fiber(w->asan_fake, nullptr, nullptr);
    w->lsan_stack.store(nullptr, std::memory_order_relaxed);
#endif
    // The G that came back is the current one: g may have switched directly to others.
    G* out = w->curg;
    w->curg = nullptr;
    w->in_g.store(false, std::memory_order_release);
    after_switch(w, out, t.fctx);
}

#if GORO_ASAN
// lsan_at_exit() runs at exit (on_process_exit), before LeakSanitizer's check, and makes the live part of
// every goroutine stack a root for it: LSan scans thread stacks, not fibers' (without this, an
// object only a parked goroutine references, like a hub that lives for the rest of the
// process, is reported as leaked). From here on no goroutine starts running (execute), so the
// stacks hold still. A switched-out G is live from its saved stack pointer up; a G running now
// is registered whole. Stacks of finished goroutines are not scanned: a stale pointer there
// would hide a leak. Sanitizer builds never switch G to G directly: execute() is the only way in.
inline void Scheduler::lsan_at_exit() noexcept {
    int n = nworkers_.load(std::memory_order_acquire);
    std::size_t usable = stacks_.stack_size() - stack_guard;
    for (int i = 0; i < n; ++i) {
        char* base = workers_[i]->lsan_stack.load(std::memory_order_seq_cst);
        if (base) __lsan_register_root_region(base + stack_guard, usable);
    }
    std::lock_guard<Lock> l(lsan_mu_);
    for (G* g = lsan_gs_; g; g = g->lsan_next) {
        char* sp = static_cast<char*>(g->context);
        if (sp > g->stack.bottom() && sp < g->stack.top())
            __lsan_register_root_region(sp, g->stack.top() - sp);
    }
}
#endif

// ---- exit (runtime.main's exit(0)) ----
//
// When Go's main returns, the process ends: no goroutine runs again, and nothing is torn down
// under one that is still running. In C++, exit() runs the destructors of static objects, and
// goroutines still running on the workers would use them as they go (repro t_exit_static).
// on_process_exit() is an exit handler that runs before the destructors of every static object
// constructed before the runtime started. It stops scheduling: from then on a worker that is
// about to run a goroutine or a timer stops for good instead. Then:
//   - once no worker runs a goroutine (other than the one calling exit, if any) and no
//     blocking() call is in flight, exit goes on as usual, static destructors included:
//     parked goroutines never run again, so what they use may be destroyed;
//   - if that does not happen within exit_grace (a goroutine computing without a scheduling
//     point, a long blocking() call), it flushes stdio and the standard streams and ends the
//     process with _exit(status), as Go's runtime.main does: goroutines stop where they are,
//     and static destructors do not run. (ThreadSanitizer still reports at _exit; under
//     AddressSanitizer, LeakSanitizer's check runs first.) ThreadSanitizer builds always
//     take this way: see below.
// Objects whose destructors were registered after the runtime started (a function-local
// static first used later) are destroyed before this handler runs: give objects that running
// goroutines use static storage from before the first go(), or never destroy them.
//
// The handshake costs the scheduling loop no fence: a worker stores in_g and then loads
// exiting_; the exiting thread stores exiting_, then membarrier(2) runs a full barrier on
// every thread of the process, after which either the worker's in_g is visible or the worker
// will see exiting_.
inline void Scheduler::on_process_exit(int status, void* self) noexcept {
    runtime_enter();
    auto* s = static_cast<Scheduler*>(self);
    s->exiting_.store(true, std::memory_order_seq_cst);
    // ThreadSanitizer cannot see that a stopped goroutine's accesses come before the
    // destructors (fiber switches do not synchronise), and would report each as a race: its
    // builds always end with _exit, which it reports at.
    if (!GORO_TSAN && process_barrier()) {
        const Worker* me = tls_worker;  // exit() called on a goroutine: its own worker runs
        std::int64_t deadline = nanotime() + exit_grace_ns;
        for (;;) {
            if (s->quiescent_for_exit(me)) {
#if GORO_ASAN
                s->lsan_at_exit();  // LeakSanitizer's own check comes after the destructors
#endif
                runtime_leave();
                return;
            }
            if (nanotime() > deadline) break;
            timespec ts{0, 1'000'000};
            ::nanosleep(&ts, nullptr);
        }
    }
    std::cout.flush();
    std::cerr.flush();
    std::clog.flush();
    std::fflush(nullptr);
#if GORO_ASAN
    s->lsan_at_exit();
    __lsan_do_leak_check();
#endif
    runtime_leave();
    ::_exit(status);
}

// quiescent_for_exit() tells whether no worker but self runs a goroutine and no blocking()
// call is in flight.
inline bool Scheduler::quiescent_for_exit(const Worker* self) const noexcept {
    if (nblocking_.load(std::memory_order_acquire) != 0) return false;
    int n = nworkers_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        if (workers_[i] != self && workers_[i]->in_g.load(std::memory_order_acquire)) return false;
    return true;
}

// stop_for_exit() stops worker w for good: the process is exiting.
[[noreturn]] inline void Scheduler::stop_for_exit(Worker* w) noexcept {
    w->in_g.store(false, std::memory_order_release);
    for (;;) ::pause();
}

// det_pick() is deterministic mode's choice of the next G: any runnable one, uniformly, drawn
// from the seeded generator. Every runnable G is first gathered into det_runnable_ (so that a
// million queued goroutines cost O(1) a pick); there is one worker, the only user of it.
inline G* Scheduler::det_pick(Worker* w) {
    if (runq_len_.load(std::memory_order_acquire) > 0) {
        std::lock_guard<Lock> lk(mu_);
        std::uint32_t n = 0;
        for (; G* g = runq_.pop(); ++n) det_runnable_.push_back(g);
        runq_len_.fetch_sub(n, std::memory_order_release);
    }
    while (G* g = runq_get(w)) det_runnable_.push_back(g);
    if (det_runnable_.empty()) return nullptr;
    std::size_t k = fastrandn(static_cast<std::uint32_t>(det_runnable_.size()));
    G* g = det_runnable_[k];
    det_runnable_[k] = det_runnable_.back();
    det_runnable_.pop_back();
    return g;
}

// direct_next() is the G to switch to directly from a G that parks or exits, if any.
inline G* Scheduler::direct_next(Worker* w) {
#if GORO_ASAN || GORO_TSAN
    (void)w;
    return nullptr;
#else
    if ((w->schedtick & 7) == 7 || w->id >= gomaxprocs() || det_seed_ ||
        GORO_UNLIKELY(exiting_.load(std::memory_order_relaxed)))
        return nullptr;
    G* next = runq_get(w);
    if (!next) return nullptr;
    ++w->schedtick;
    if (!next->stack) {
        prepare(w, next);
        // Boost's trampoline does not pass on_top's result to a context that never ran:
        // g_entry reads this flag instead of its argument.
        w->start_direct = true;
    }
    return next;
#endif
}

// on_top() runs on the next G's stack, right after a direct switch, for the G that left.
inline ctx::transfer_t Scheduler::on_top(ctx::transfer_t t) noexcept {
    auto* w = static_cast<Worker*>(t.data);
    w->sched->after_switch(w, w->prev, t.fctx);
    return {nullptr, w};  // no scheduler context: the resumed G keeps w->g0 as it is
}

// after_switch() acts on what G g asked for when it switched out with context `from`.
inline void Scheduler::after_switch(Worker* w, G* g, ctx::fcontext_t from) {
    Worker::Action a = w->action;
    w->action = Worker::Action::none;
    // Overflow checks, before anything reuses the stack: the saved stack pointer, and the
    // soft guard's top page, which stays zero unless the goroutine ran into it (even if it has
    // come back up since). Hard-guarded stacks fault at once instead. The lowest saved stack
    // pointer is the depth the stack pool budgets for.
    char* sp = static_cast<char*>(from);
    if (sp < g->stack.low) g->stack.low = sp;
    if (GORO_UNLIKELY(sp < g->stack.bottom() + 256 ||
                      (!g->stack.guarded && g->stack.soft_guard_dirty()))) {
        char msg[96];
        std::snprintf(msg, sizeof msg, "goroutine %llu: stack overflow (stack size %zu)",
                      static_cast<unsigned long long>(g->id), g->stack.usable());
        fatal(msg);
    }
    if (a == Worker::Action::exit) {
#if GORO_ASAN
        {
            std::lock_guard<Lock> l(lsan_mu_);
            (g->lsan_prev ? g->lsan_prev->lsan_next : lsan_gs_) = g->lsan_next;
            if (g->lsan_next) g->lsan_next->lsan_prev = g->lsan_prev;
        }
#endif
        w->stacks.put(stacks_, g->stack);
        g->free(g);
        w->exited.store(w->exited.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return;
    }
    g->context = from;
    if (a == Worker::Action::park) {
        if (!w->unlock.fn(w->unlock.arg)) runq_put(w, g, true);
    } else if (a == Worker::Action::yield) {
        globrunq_put(g);
    } else if (a == Worker::Action::yield_local) {
        runq_put(w, g, false);
    }
}

// switch_out() leaves the running G; it returns when some worker resumes it, perhaps on
// another thread.
inline void Scheduler::switch_out(G* g, Worker::Action a) {
    Worker* w = g->m;
    w->action = a;
    EhGlobals* eh = w->eh;  // this thread's caught-exception state
    g->eh = *eh;
    *eh = EhGlobals{};
    ctx::transfer_t t;
    G* next = a == Worker::Action::park ? direct_next(w) : nullptr;
    if (next) {
        w->prev = g;
        w->curg = next;
        next->m = w;
        t = ctx::ontop_fcontext(next->context, w, &on_top);
    } else {
#if GORO_ASAN
        __sanitizer_start_switch_fiber(&g->asan_fake, w->g0_bottom, w->g0_size);
#endif
#if GORO_TSAN
        __tsan_switch_to_fiber(w->tsan_g0, tsan_switch_flags);
#endif
        t = ctx::jump_fcontext(w->g0, nullptr);
    }
    w = static_cast<Worker*>(t.data);
    if (t.fctx) w->g0 = t.fctx;  // resumed by the scheduling loop rather than another G
    g->m = w;
#if GORO_ASAN
    __sanitizer_finish_switch_fiber(g->asan_fake, &w->g0_bottom, &w->g0_size);
#endif
    *w->eh = g->eh;
}

inline void Scheduler::g_entry(ctx::transfer_t t) noexcept {
    runtime_enter();
    Worker* w = current_worker();  // a new G starts on the thread that switched to it
    if (w->start_direct) w->start_direct = false;  // from another G: t is meaningless
    else w->g0 = t.fctx;                            // from the scheduling loop
    G* g = w->curg;
#if GORO_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w->g0_bottom, &w->g0_size);
#endif
    runtime_leave();
    hb_acquire(g);  // the go statement happens before the goroutine starts (spawn)
    try {
        g->run(g);
    } catch (const std::exception& e) {
        panic(g, e.what());
    } catch (...) {
        panic(g, "unknown exception (not derived from std::exception)");
    }
    runtime_enter();
    w = g->m;
    w->action = Worker::Action::exit;
    if (G* next = w->sched->direct_next(w)) {
        w->prev = g;
        w->curg = next;
        next->m = w;
        ctx::ontop_fcontext(next->context, w, &on_top);  // on_top frees this stack
        __builtin_unreachable();
    }
#if GORO_ASAN
    __sanitizer_start_switch_fiber(nullptr, w->g0_bottom, w->g0_size);
#endif
#if GORO_TSAN
    // g_entry never returns, so TSan never sees it leave: pop its frame from the fiber's
    // shadow stack here. A fiber is recycled with its stack, and would otherwise gain a frame
    // per goroutine until its fixed-size shadow stack overflowed (a crash after some 64K
    // goroutines had run on one stack).
    // The fiber goes back to its stack's pool: leave it as a new goroutine expects to find it.
    void* g0_fiber = w->tsan_g0;
    ctx::fcontext_t g0 = w->g0;
    runtime_leave();
    goro_tsan_func_exit();
    __tsan_switch_to_fiber(g0_fiber, tsan_switch_flags);
    ctx::jump_fcontext(g0, nullptr);
    __builtin_unreachable();
#endif
    ctx::jump_fcontext(w->g0, nullptr);
    __builtin_unreachable();
}

// ---- stack overflow (the guard page) ----

inline void Scheduler::install_overflow_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = &on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &prev_segv_);
}

// on_segv() reports a fault in the running goroutine's guard page as a stack overflow, in Go's
// manner, and exits 2. Any other fault goes to the handler that was there before (the fault
// repeats once this returns), so crashes still crash and sanitizers still report.
inline void Scheduler::on_segv(int sig, siginfo_t* info, void* uctx) noexcept {
    Worker* w = tls_worker;
    G* g = w ? w->curg : nullptr;
    if (g && StackAllocator::in_guard(g->stack, info->si_addr)) {
        char buf[128];
        std::size_t n = 0;
        auto put = [&](const char* s) {
            while (*s && n < sizeof buf) buf[n++] = *s++;
        };
        auto num = [&](unsigned long long v) {
            char d[24];
            int k = 0;
            do d[k++] = static_cast<char>('0' + v % 10); while ((v /= 10) && k < 24);
            while (k && n < sizeof buf) buf[n++] = d[--k];
        };
        put("goroutine ");
        num(g->id);
        put(": stack overflow (stack size ");
        num(g->stack.usable());
        put(")\n");
        ssize_t r = ::write(2, buf, n);
        (void)r;
        ::_exit(2);
    }
    if (prev_segv_.sa_flags & SA_SIGINFO) {
        if (prev_segv_.sa_sigaction) {
            prev_segv_.sa_sigaction(sig, info, uctx);
            return;
        }
    }
    ::sigaction(SIGSEGV, &prev_segv_, nullptr);
}

[[noreturn]] inline void Scheduler::panic(G* g, const char* what) noexcept {
    std::fflush(stdout);
    std::fprintf(stderr, "panic: %s\n\ngoroutine %llu [running]\n", what,
                 static_cast<unsigned long long>(g->id));
    std::fflush(stderr);
    std::_Exit(2);
}

// ---- park / ready / yield ----

inline void Scheduler::park(Unlock unlock) {
    RuntimeSection rs;
    Worker* w = current_worker();
    if (w && w->curg) {
        w->unlock = unlock;
        switch_out(w->curg, Worker::Action::park);
        return;
    }
    park_thread(unlock);
}

inline void Scheduler::park_thread(Unlock unlock) {
    note_plain_thread();
    ThreadParker& p = tls_parker;
    p.state.store(1, std::memory_order_relaxed);
    nblocked_threads_.fetch_add(1, std::memory_order_acq_rel);
    if (!unlock.fn(unlock.arg)) {
        nblocked_threads_.fetch_sub(1, std::memory_order_acq_rel);
        p.state.store(0, std::memory_order_relaxed);
        return;
    }
    if (p.state.load(std::memory_order_acquire) == 1) check_dead();
    while (p.state.load(std::memory_order_acquire) == 1) futex_wait(&p.state, 1);
    p.state.store(0, std::memory_order_relaxed);
}

inline void Scheduler::ready(Parker* p) {
    RuntimeSection rs;
    if (p->kind == Parker::Kind::thread) {
        note_plain_thread();  // the waker, if a plain thread
        auto* t = static_cast<ThreadParker*>(p);
        nblocked_threads_.fetch_sub(1, std::memory_order_acq_rel);
        t->state.store(2, std::memory_order_release);
        futex_wake(&t->state);
        return;
    }
    G* g = static_cast<G*>(p);
    Worker* w = current_worker();
    if (w && w->sched == this) runq_put(w, g, true);
    else put_plain(g, false);
    wakep();
}

inline void Scheduler::yield() {
    RuntimeSection rs;
    Worker* w = current_worker();
    if (w && w->curg) switch_out(w->curg, Worker::Action::yield);
    else std::this_thread::yield();
}

inline void Scheduler::yield_local() {
    RuntimeSection rs;
    Worker* w = current_worker();
    if (w && w->curg) switch_out(w->curg, Worker::Action::yield_local);
}

// ---- timers ----

inline void Scheduler::timer_start(Timer* t) {
    RuntimeSection rs;
    ensure_started();
    Worker* w = current_worker();
    if (!w || w->sched != this || w->id >= gomaxprocs()) w = workers_[0];
    std::int64_t when = t->when;  // once pushed, t may fire (and vanish) on another worker
    // A timer that never fires still counts as pending, so check_dead() holds off while one
    // exists (Go's checkdead returns while any P has timers), but it needs no worker awake.
    ntimers_.fetch_add(1, std::memory_order_acq_rel);
    w->timers.push(t);
    if (when != TimerHeap::never) wake_poller(when);
}

inline bool Scheduler::timer_stop(Timer* t) {
    RuntimeSection rs;
    if (!TimerHeap::remove(t)) return false;
    ntimers_.fetch_sub(1, std::memory_order_acq_rel);
    return true;
}

// ---- deadlock detection (checkdead) ----

// note_plain_thread() counts the calling plain thread among the live ones that used the runtime
// (parked, readied or spawned), the first time it does. Out of line so that a goroutine that
// calls it never uses another thread's TLS address.
GORO_NOINLINE inline void Scheduler::note_plain_thread() noexcept {
    PlainState& s = tls_plain;
    if (GORO_LIKELY(s != PlainState::unseen)) return;
    if (tls_worker) {
        s = PlainState::other;
        return;
    }
    s = PlainState::counted;
    (void)&tls_plain_release;  // constructs it: its destructor uncounts the thread at exit
    nplain_.fetch_add(1, std::memory_order_acq_rel);
}

// A counted thread that leaves is listed among the leavers before it is uncounted, so that a
// check that sees it uncounted waits until /proc no longer lists it. If every plain thread left
// is then parked, its exit may be the last event before a deadlock, and a thread that is still
// running cannot see itself gone: it hands the check to the blocking pool, whose thread checks
// after each call (Go's mexit calls checkdead).
inline PlainRelease::~PlainRelease() {
    RuntimeSection rs;
    tls_plain = PlainState::other;  // a use of the runtime later in this thread's exit is not counted
    Scheduler& s = Scheduler::instance();
    s.note_leaver();
    int left = s.nplain_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    int blocked = s.nblocked_threads_.load(std::memory_order_acquire);
    if (blocked > 0 && left <= blocked) s.pool_.submit([] {});
}

inline void Scheduler::note_leaver() noexcept {
    pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    std::lock_guard<std::mutex> g(leavers_mu_);
    // Bounded: threads are gone microseconds after they leave, so prune the list when it grows.
    if (leavers_.size() >= 64)
        std::erase_if(leavers_, [](pid_t t) { return !task_listed(t); });
    if (leavers_.size() >= 64) leavers_.erase(leavers_.begin());
    leavers_.push_back(tid);
}

// leavers_gone() waits until /proc lists none of the plain threads that left; false when one
// has not ended within a second (a thread_local destructor after ours blocks: a live thread).
inline bool Scheduler::leavers_gone() noexcept {
    std::lock_guard<std::mutex> g(leavers_mu_);
    while (!leavers_.empty()) {
        if (!await_task_gone(leavers_.back())) return false;
        leavers_.pop_back();
    }
    return true;
}

// task_listed() tells whether /proc still lists thread tid of this process.
inline bool Scheduler::task_listed(pid_t tid) noexcept {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(tid));
    return ::access(path, F_OK) == 0;
}

// await_task_gone() waits, a second at most, until /proc no longer lists thread tid (the kernel
// drops a thread a little after it wakes its joiner). Bounded: once the thread is gone, its tid
// may be reused by a new one (pid_max may be 32768).
inline bool Scheduler::await_task_gone(pid_t tid) noexcept {
    for (int i = 0; i < 1000; ++i) {
        if (!task_listed(tid)) return true;
        if (i < 64) ::sched_yield();
        else ::usleep(1000);
    }
    return false;
}

// process_threads() is the number of threads in the process (/proc/self/stat), -1 if unknown.
// With open/read, not stdio: it also serves the fatal error of a failed thread creation.
inline int Scheduler::process_threads() noexcept {
    char buf[1024];
    int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    if (!p) return -1;
    // Fields after the command name: state is field 3, num_threads field 20.
    int field = 2;
    for (++p; *p && field < 20; ++p)
        if (*p == ' ') ++field;
    return std::atoi(p);
}

// Go's checkdead compares counters only: every thread is an M it knows. goro's plain threads
// are not, and one that is busy in user code (or sleeping in the OS) may still wake the waiters.
// So the counters come first: while some plain thread the runtime has seen (nplain_) is not
// parked, there is no deadlock. Only when every one of them is parked must /proc tell whether
// the process has a thread the runtime never saw.
//
// /proc is read under mu_ as before, because mu_ is what freezes the state the counters
// describe: no worker leaves the idle list without it (wakep, the idle loop, retire). Read
// without it, a worker could be woken by a thread that exits before the read, run a goroutine
// that starts a thread after the read and park again, leaving the same counters on both sides
// of a read that missed the new thread: a false deadlock. The read is now rare (every plain
// thread the runtime knows is parked, at a deadlock or beside a thread it never saw), so the
// lock's hold on it costs nothing measurable.
inline void Scheduler::check_dead() {
    if (nplain_.load(std::memory_order_acquire) > nblocked_threads_.load(std::memory_order_acquire))
        return;
    std::lock_guard<Lock> lk(mu_);
    // Every started worker must be idle or parked in retirement: a worker beyond GOMAXPROCS may
    // still be finishing a goroutine, or moving its run queue to the global one.
    int nw = nworkers_.load(std::memory_order_relaxed);
    if (npidle_.load(std::memory_order_relaxed) + nretired_.load(std::memory_order_relaxed) < nw)
        return;
    if (runq_len_.load(std::memory_order_relaxed) != 0 ||
        ntimers_.load(std::memory_order_acquire) != 0 ||
        nblocking_.load(std::memory_order_acquire) != 0)
        return;
    int blocked = nblocked_threads_.load(std::memory_order_acquire);
    if (blocked == 0 || nplain_.load(std::memory_order_acquire) > blocked) return;
    for (int i = 0; i < nw; ++i)
        if (!runq_empty(workers_[i])) return;
    if (ext_pending()) return;
    // Plain threads that left may still be listed.
    if (!leavers_gone()) return;
    // The pool's threads as /proc lists them: census() reaps those that left first, and one
    // that leaves during the read may or may not be listed, so read again.
    int pool, threads;
    for (;;) {
        std::uint64_t gen;
        pool = pool_.census(gen);
        if (pool < 0) return;
        threads = process_threads();
        if (pool_.generation() == gen) break;
    }
#if GORO_TSAN
    // ThreadSanitizer starts one background thread of its own with the process's second thread.
    if (threads > 1) --threads;
#endif
    if (threads != nw + pool + blocked) return;
    // Recheck what may have moved while we read /proc. A plain thread's ring is pushed to
    // without mu_: a thread that readied a G there and exited while /proc was read left the G
    // behind, and a worker that went idle just before will find it.
    if (nblocked_threads_.load(std::memory_order_acquire) != blocked ||
        ntimers_.load(std::memory_order_acquire) != 0 ||
        nblocking_.load(std::memory_order_acquire) != 0 || ext_pending())
        return;
    fatal("all goroutines are asleep - deadlock!");
}

}  // namespace goro::detail
