// goro/sync.hpp: WaitGroup, Mutex, RWMutex, Once and Cond (Go's sync package).
//
// All of them park a goroutine (and block a plain thread) through the runtime's one park/ready
// primitive, so they can be shared freely between goroutines and threads. None is copyable:
// share them by reference, as Go code shares them by pointer. Mutex and RWMutex satisfy the
// standard Lockable and SharedLockable requirements:
//
//     goro::Mutex mu;
//     { std::lock_guard lock(mu); ++counter; }
//     goro::RWMutex rw;
//     { std::shared_lock lock(rw); read(table); }
#pragma once

#include "goro/detail/sema.hpp"

#include <stdexcept>

namespace goro {

// WaitGroup waits for a collection of goroutines to finish (sync.WaitGroup).
//
//     goro::WaitGroup wg;
//     wg.add(2);
//     goro::go([&] { a(); wg.done(); });
//     goro::go([&] { b(); wg.done(); });
//     wg.wait();
class WaitGroup {
public:
    WaitGroup() = default;
    WaitGroup(const WaitGroup&) = delete;
    WaitGroup& operator=(const WaitGroup&) = delete;

    // add() adds delta, which may be negative, to the counter; at zero every wait() returns.
    // A counter that would go negative throws std::logic_error and is left unchanged.
    void add(int delta = 1) {
        std::uint64_t d = static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)) << 32;
        std::uint64_t state = state_.fetch_add(d, std::memory_order_acq_rel) + d;
        auto v = static_cast<std::int32_t>(state >> 32);
        auto w = static_cast<std::uint32_t>(state);
        if (v < 0) {
            state_.fetch_sub(d, std::memory_order_acq_rel);
            throw std::logic_error("sync: negative WaitGroup counter");
        }
        if (w != 0 && delta > 0 && v == delta)
            detail::fatal("sync: WaitGroup misuse: add called concurrently with wait");
        if (v > 0 || w == 0) return;
        // The counter reached zero with waiters: nobody may change the state now but us.
        if (state_.load(std::memory_order_acquire) != state)
            detail::fatal("sync: WaitGroup misuse: add called concurrently with wait");
        state_.store(0, std::memory_order_release);
        sema_.release(w);  // all at once: the first waiter to return may destroy *this
    }

    // done() decrements the counter by one.
    void done() { add(-1); }

    // wait() blocks until the counter is zero.
    void wait() {
        std::uint64_t state = state_.load(std::memory_order_acquire);
        for (;;) {
            if ((state >> 32) == 0) return;
            if (state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) {
                // Go then checks that the group was not reused; here another waiter may already
                // have destroyed it, so *this is not touched again.
                sema_.acquire();
                return;
            }
        }
    }

private:
    std::atomic<std::uint64_t> state_{0};  // high 32 bits: counter; low 32 bits: waiters
    detail::Sema sema_;
};

// Mutex is a mutual exclusion lock (sync.Mutex), fair in Go's way: normally a woken waiter
// competes with newcomers (which wins more throughput), but a waiter that has waited over 1 ms
// switches the mutex to starvation mode, in which unlock() hands ownership straight to the
// waiter at the head of the queue. It is not tied to a goroutine or thread: any may unlock it.
class Mutex {
public:
    Mutex() = default;
    Mutex(const Mutex&) = delete;
    Mutex& operator=(const Mutex&) = delete;

    // lock() acquires the mutex, parking until it is available.
    void lock() {
        std::int32_t old = 0;
        if (GORO_LIKELY(state_.compare_exchange_strong(old, locked, std::memory_order_acquire)))
            return;
        lock_slow();
    }

    // try_lock() acquires the mutex if that needs no waiting.
    bool try_lock() noexcept {
        std::int32_t old = state_.load(std::memory_order_relaxed);
        if (old & (locked | starving)) return false;
        return state_.compare_exchange_strong(old, old | locked, std::memory_order_acquire);
    }

    // unlock() releases the mutex; unlocking an unlocked Mutex is a fatal error.
    void unlock() {
        std::int32_t now = state_.fetch_sub(locked, std::memory_order_release) - locked;
        if (now != 0) unlock_slow(now);
    }

private:
    static constexpr std::int32_t locked = 1, woken = 2, starving = 4, waiter_shift = 3;
    static constexpr std::int64_t starvation_threshold_ns = 1'000'000;

    void lock_slow();
    void unlock_slow(std::int32_t now);

    std::atomic<std::int32_t> state_{0};
    detail::Sema sema_;
};

// RWMutex is a reader/writer lock (sync.RWMutex): any number of readers or one writer. A
// writer waiting in lock() keeps new readers out, so a stream of readers cannot starve it.
class RWMutex {
public:
    RWMutex() = default;
    RWMutex(const RWMutex&) = delete;
    RWMutex& operator=(const RWMutex&) = delete;

    // lock() acquires for writing.
    void lock() {
        w_.lock();
        std::int32_t r = reader_count_.fetch_sub(max_readers, std::memory_order_acq_rel);
        if (r != 0 && reader_wait_.fetch_add(r, std::memory_order_acq_rel) + r != 0)
            writer_sem_.acquire();
    }
    // try_lock() acquires for writing if that needs no waiting.
    bool try_lock() {
        if (!w_.try_lock()) return false;
        std::int32_t zero = 0;
        if (!reader_count_.compare_exchange_strong(zero, -max_readers,
                                                   std::memory_order_acquire)) {
            w_.unlock();
            return false;
        }
        return true;
    }
    // unlock() releases a write lock and lets the readers that queued behind it in.
    void unlock() {
        std::int32_t r = reader_count_.fetch_add(max_readers, std::memory_order_release) +
                         max_readers;
        if (r >= max_readers) detail::fatal("sync: Unlock of unlocked RWMutex");
        if (r > 0) reader_sem_.release(static_cast<std::uint32_t>(r));
        w_.unlock();
    }
    // lock_shared() acquires for reading.
    void lock_shared() {
        if (reader_count_.fetch_add(1, std::memory_order_acquire) + 1 < 0) reader_sem_.acquire();
    }
    // try_lock_shared() acquires for reading if no writer holds or awaits the lock.
    bool try_lock_shared() noexcept {
        std::int32_t c = reader_count_.load(std::memory_order_relaxed);
        while (c >= 0)
            if (reader_count_.compare_exchange_weak(c, c + 1, std::memory_order_acquire))
                return true;
        return false;
    }
    // unlock_shared() releases a read lock.
    void unlock_shared() {
        std::int32_t r = reader_count_.fetch_sub(1, std::memory_order_release) - 1;
        if (r < 0) {
            if (r + 1 == 0 || r + 1 == -max_readers)
                detail::fatal("sync: RUnlock of unlocked RWMutex");
            if (reader_wait_.fetch_sub(1, std::memory_order_acq_rel) - 1 == 0)
                writer_sem_.release();
        }
    }

private:
    static constexpr std::int32_t max_readers = 1 << 30;
    Mutex w_;                                 // held by a writer, pending or active
    detail::Sema writer_sem_;                 // a writer waits here for departing readers
    detail::Sema reader_sem_;                 // readers wait here for a writer to finish
    std::atomic<std::int32_t> reader_count_{0};  // readers; minus max_readers while a writer is in
    std::atomic<std::int32_t> reader_wait_{0};   // readers a pending writer still waits for
};

// Once runs a function exactly once (sync.Once).
//
//     static goro::Once once;
//     once.call([] { init(); });
//
// As in Go, a call whose function throws still counts as done, and the exception propagates
// to that caller; concurrent callers wait until the function has returned or thrown.
class Once {
public:
    Once() = default;
    Once(const Once&) = delete;
    Once& operator=(const Once&) = delete;

    // call() runs f unless this Once has already run a function.
    template <class F>
    void call(F&& f) {
        if (done_.load(std::memory_order_acquire)) return;
        std::lock_guard<Mutex> lock(m_);
        if (done_.load(std::memory_order_relaxed)) return;
        struct SetDone {
            std::atomic<bool>& d;
            ~SetDone() { d.store(true, std::memory_order_release); }
        } set{done_};
        std::forward<F>(f)();
    }

private:
    std::atomic<bool> done_{false};
    Mutex m_;
};

// Cond is a condition variable tied to a Mutex (sync.Cond).
//
//     goro::Cond c(mu);
//     std::lock_guard lock(mu);
//     while (!ready) c.wait();
class Cond {
public:
    explicit Cond(Mutex& m) noexcept : m_(m) {}
    Cond(const Cond&) = delete;
    Cond& operator=(const Cond&) = delete;

    // wait() unlocks the mutex, waits for signal() or broadcast(), and locks it again before
    // returning. The caller must hold the mutex.
    // (The ticket queue is runtime, as Go's notifyList: what a waiter may rely on comes through
    // the mutex, which is the race detector's view too.)
    void wait() {
        std::uint32_t ticket;
        {
            detail::RuntimeSection rs;
            mu_.lock();
            ticket = wait_++;
            mu_.unlock();
        }
        m_.unlock();
        {
            detail::RuntimeSection rs;
            mu_.lock();
            if (static_cast<std::int32_t>(ticket - notify_) < 0) {  // already notified
                mu_.unlock();
            } else {
                detail::Waiter w;
                w.parker = detail::current_parker();
                w.ticket = ticket;
                q_.push_back(&w);
                detail::park_on(mu_, w);
            }
        }
        m_.lock();
    }

    // signal() wakes the longest-waiting goroutine, if any.
    void signal() {
        detail::RuntimeSection rs;
        mu_.lock();
        if (wait_ == notify_) {
            mu_.unlock();
            return;
        }
        std::uint32_t t = notify_++;
        detail::Waiter* found = nullptr;
        for (detail::Waiter* w = q_.front(); w; w = w->next) {
            if (w->ticket == t) {
                q_.remove(w);
                found = w;
                break;
            }
        }
        mu_.unlock();
        if (found) detail::wake_parker(found->parker);
    }

    // broadcast() wakes every waiting goroutine.
    void broadcast() {
        detail::RuntimeSection rs;
        mu_.lock();
        notify_ = wait_;
        detail::Waiter* w = q_.take_all();
        mu_.unlock();
        while (w) {
            detail::Waiter* next = w->next;  // read before ready: w may vanish after
            detail::wake_parker(w->parker);
            w = next;
        }
    }

private:
    Mutex& m_;
    detail::Lock mu_;
    std::uint32_t wait_ = 0;    // next ticket to hand out; guarded by mu_
    std::uint32_t notify_ = 0;  // next ticket to notify; guarded by mu_
    detail::WaitQueue q_;       // guarded by mu_
};

// ---------------------------------------------------------------------------------------------

inline void Mutex::lock_slow() {  // mirrors lockSlow in mutex.go
    auto& sched = detail::Scheduler::instance();
    std::int64_t wait_start = 0;
    bool starve = false, awoke = false;
    int iter = 0;
    std::int32_t old = state_.load(std::memory_order_relaxed);
    for (;;) {
        // Spin while the holder is running and we might take the lock without parking.
        if ((old & (locked | starving)) == locked && sched.can_spin(iter)) {
            if (!awoke && !(old & woken) && (old >> waiter_shift) != 0 &&
                state_.compare_exchange_strong(old, old | woken, std::memory_order_relaxed))
                awoke = true;
            for (int i = 0; i < 30; ++i) detail::cpu_relax();
            ++iter;
            old = state_.load(std::memory_order_relaxed);
            continue;
        }
        std::int32_t next = old;
        if (!(old & starving)) next |= locked;  // newcomers do not barge in starvation mode
        if (old & (locked | starving)) next += 1 << waiter_shift;
        if (starve && (old & locked)) next |= starving;
        if (awoke) {
            if (!(next & woken)) detail::fatal("sync: inconsistent mutex state");
            next &= ~woken;
        }
        if (state_.compare_exchange_strong(old, next, std::memory_order_acquire)) {
            if (!(old & (locked | starving))) return;  // locked by the CAS
            bool lifo = wait_start != 0;  // waited before: back to the head of the queue
            if (!wait_start) wait_start = detail::nanotime();
            sema_.acquire(lifo);
            starve = starve || detail::nanotime() - wait_start > starvation_threshold_ns;
            old = state_.load(std::memory_order_relaxed);
            if (old & starving) {
                // Ownership was handed to us: fix up the state and leave starvation mode when
                // we are the last waiter or did not wait long.
                if ((old & (locked | woken)) || (old >> waiter_shift) == 0)
                    detail::fatal("sync: inconsistent mutex state");
                std::int32_t delta = locked - (1 << waiter_shift);
                if (!starve || (old >> waiter_shift) == 1) delta -= starving;
                state_.fetch_add(delta, std::memory_order_acquire);
                return;
            }
            awoke = true;
            iter = 0;
        } else {
            old = state_.load(std::memory_order_relaxed);
        }
    }
}

inline void Mutex::unlock_slow(std::int32_t now) {  // mirrors unlockSlow in mutex.go
    if (!((now + locked) & locked)) detail::fatal("sync: unlock of unlocked mutex");
    if (now & starving) {
        sema_.release(1, true);  // hand off ownership to the first waiter
        return;
    }
    std::int32_t old = now;
    for (;;) {
        // Nobody to wake, or someone already woken or holding the lock: done.
        if ((old >> waiter_shift) == 0 || (old & (locked | woken | starving))) return;
        std::int32_t next = (old - (1 << waiter_shift)) | woken;
        if (state_.compare_exchange_strong(old, next, std::memory_order_release)) {
            sema_.release();
            return;
        }
    }
}

}  // namespace goro
