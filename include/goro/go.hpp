// goro/go.hpp: goroutines.
//
//     goro::WaitGroup wg;
//     for (int i = 0; i < 10; ++i) {
//         wg.add(1);
//         goro::go([&wg, i] { work(i); wg.done(); });
//     }
//     wg.wait();   // works on a plain thread: main needs no set-up
//
// Goroutines are stackful fibers on small growable stacks (256 KiB of address space each, of
// which only touched pages are committed; GORO_STACK_SIZE changes the reservation), run by
// GOMAXPROCS worker threads. A goroutine may resume on a different thread after any blocking
// call, so `thread_local` variables are per worker thread, not per goroutine: do not keep a
// pointer or reference to a thread_local across a blocking call, and do not hold a std::mutex
// across one (it would block the worker, and unlocking on another thread is undefined).
#pragma once

#include "goro/detail/sched.hpp"

#include <cerrno>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {
// ErrnoSaver copies errno into `to` when it goes out of scope.
struct ErrnoSaver {
    int& to;
    ~ErrnoSaver() { to = errno; }
};
// set_errno() is out of line so that errno's address is looked up on the thread that runs it:
// glibc declares __errno_location() const, so an inlined `errno = e` could reuse an address
// the caller computed before it parked, on another thread. errno is the worker thread's, which
// every goroutine on it shares: the race detector must not see the store (a RuntimeSection).
GORO_NOINLINE inline void set_errno(int e) noexcept {
    RuntimeSection rs;
    errno = e;
}
}  // namespace detail

// go() starts f(args...) in a new goroutine. f and args are decay-copied, as by std::thread;
// they are destroyed on the goroutine when it finishes. An exception that escapes f ends the
// process: "panic: <what()>", exit status 2 (Go's unrecovered panic).
template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
void go(F&& f, Args&&... args) {
    auto body = [fn = std::forward<F>(f),
                 tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
        std::apply(std::move(fn), std::move(tup));
    };
    using Body = decltype(body);
    auto* g = detail::GoClosure<Body>::make(std::move(body));
    detail::Scheduler::instance().spawn(g);
}

// yield() lets other goroutines run; the caller goes to the back of the global run queue
// (runtime.Gosched). On a plain thread it yields the thread.
inline void yield() { detail::Scheduler::instance().yield(); }

// gomaxprocs() is the number of worker threads running goroutines.
inline int gomaxprocs() { return detail::Scheduler::instance().gomaxprocs(); }

// set_gomaxprocs() changes the number of worker threads and returns the previous value; n < 1
// only queries. Goroutines already running finish their current stretch where they are.
inline int set_gomaxprocs(int n) { return detail::Scheduler::instance().set_gomaxprocs(n); }

// sched_seed() is the seed of deterministic scheduling (environment GORO_SCHED_SEED: one worker,
// and the goroutine to run next drawn from a generator with this seed), 0 when it is off.
inline std::uint64_t sched_seed() { return detail::Scheduler::instance().sched_seed(); }

// num_goroutine() is the number of goroutines that exist now, parked ones included.
inline std::size_t num_goroutine() { return detail::Scheduler::instance().num_goroutine(); }

// in_goroutine() tells whether the caller runs on a goroutine rather than a plain thread.
inline bool in_goroutine() { return detail::current_g() != nullptr; }

// blocking() runs f, a call that blocks its thread (a blocking syscall, a C library call), on a
// thread outside the workers; the calling goroutine parks until it returns, while the workers
// run other goroutines. Returns f's result; f's exception propagates; errno is set to what f
// left in it on its thread, so `if (blocking([&] { return ::read(fd, buf, n); }) < 0)` can
// look at errno. errno is a thread_local like any other: glibc lets the compiler keep its
// address, so in a function that used errno before the call, read it in another function
// (or capture it inside f). On a plain thread it simply calls f.
template <class F>
auto blocking(F&& f) -> std::invoke_result_t<F> {
    using R = std::invoke_result_t<F>;
    if (!in_goroutine()) return std::forward<F>(f)();

    auto& sched = detail::Scheduler::instance();
    using Slot = std::conditional_t<std::is_void_v<R>, char,
                 std::conditional_t<std::is_reference_v<R>, std::add_pointer_t<R>, R>>;
    std::optional<Slot> result;
    std::exception_ptr error;
    int err = 0;  // errno as f left it on the pool thread
    detail::Parker* self = detail::current_parker();
    // call() saves errno the moment f returns or throws, before anything else on the pool
    // thread (moving the result, catching) can change it.
    auto call = [&]() -> R {
        detail::ErrnoSaver save{err};
        return std::forward<F>(f)();
    };
    auto job = [&] {
        try {
            if constexpr (std::is_void_v<R>) {
                call();
                result.emplace();
            } else if constexpr (std::is_reference_v<R>) {
                result.emplace(&call());
            } else {
                result.emplace(call());
            }
        } catch (...) {
            error = std::current_exception();
        }
        // The goroutine may resume and return as soon as it is readied, destroying this
        // closure: copy what is still needed first. Ready before exit_blocking(), so that
        // deadlock detection never sees the goroutine parked with nothing pending.
        detail::Scheduler* s = &sched;
        detail::Parker* p = self;
        detail::hb_release(&error);
        s->ready(p);
        s->exit_blocking();
    };
    // For the race detector: the call happens after what the goroutine did before it, and
    // before what it does after (the pool's own locks are runtime, invisible to it).
    auto submit = [&] {
        sched.blocking_pool().submit([&job, &error] {
            detail::hb_acquire(&error);
            job();
        });
    };
    detail::hb_release(&error);  // `error` stands for the call as a synchronisation object
    sched.enter_blocking();
    sched.park(detail::make_unlock(submit));
    detail::hb_acquire(&error);
    // On whatever worker the goroutine resumed: errno is per thread, and this one's may have
    // been set by the scheduler (or by other goroutines) since.
    detail::set_errno(err);
    if (error) std::rethrow_exception(error);
    if constexpr (std::is_void_v<R>) return;
    else if constexpr (std::is_reference_v<R>) return static_cast<R>(**result);
    else return std::move(*result);
}

}  // namespace goro
