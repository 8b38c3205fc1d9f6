// goro/select.hpp: select over channel operations (Go's select statement).
//
//     switch (goro::select(
//         goro::recv(jobs, [&](std::optional<Job> j) { if (j) run(*j); }),
//         goro::send(results, r, [&] { ++sent; }),
//         goro::recv(goro::after(1s), [&] { timed_out = true; }),
//         goro::default_case())) { ... }   // returns the index of the case that ran
//
// Among the cases that are ready, one is chosen uniformly at random; without a default_case the
// caller parks until one is ready. A receive case's function receives the value, or nullopt if
// the channel is closed (a function taking no argument is accepted too). A value passed to
// send() as an rvalue is moved into the channel only if that case is chosen; an lvalue is
// copied. A send case that is chosen on a closed channel throws ChannelClosed. Nil channels are
// never ready. select() with no cases blocks forever.
//
// Build the cases inside the select() call: they refer to the values passed to them.
// The algorithm is in detail/chan.hpp (selectgo).
#pragma once

#include "goro/channel.hpp"

#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

namespace detail {

struct NoAction {
    template <class... A>
    void operator()(A&&...) const noexcept {}
};

template <class T, class F>
struct RecvCase {
    static constexpr bool is_default = false;
    ChanBase* c;
    F f;
    std::optional<T> slot;

    SelectCase raw() noexcept { return SelectCase{c, &slot, false}; }
    bool try_now() { return chanrecv(c, &slot, false).selected; }
    void block() { chanrecv(c, &slot, true); }
    void run() {
        if constexpr (std::is_invocable_v<F&, std::optional<T>>) f(std::move(slot));
        else f();
    }
};

// Own: the case holds its value (an lvalue was copied, or another type converted);
// otherwise it points at the caller's rvalue and moves from it only when chosen.
template <class T, class F, bool Own>
struct SendCase {
    static constexpr bool is_default = false;
    ChanBase* c;
    std::conditional_t<Own, T, T*> v;
    F f;

    T* src() noexcept {
        if constexpr (Own) return &v;
        else return v;
    }
    SelectCase raw() noexcept { return SelectCase{c, src(), true}; }
    bool try_now() { return chansend(c, src(), false); }
    void block() { chansend(c, src(), true); }
    void run() { f(); }
};

template <class F>
struct DefaultCase {
    static constexpr bool is_default = true;
    F f;
    void run() { f(); }
};

template <class C>
using chan_value_t = typename std::remove_cvref_t<C>::value_type;

// A receive case needs a channel that can receive, a send case one that can send (perm.go).
template <class C>
concept RecvableChannel = requires(const C& c) { c.recv(); c.core(); };
template <class C>
concept SendableChannel = requires(const C& c, chan_value_t<C> v) { c.send(std::move(v)); c.core(); };

template <class C>
SelectCase raw_of(C& c) noexcept {
    if constexpr (C::is_default) return {};
    else return c.raw();
}

}  // namespace detail

// recv() is the case `v, ok := <-ch`, optionally with a function to run on the result.
template <detail::RecvableChannel C>
auto recv(const C& ch) {
    return detail::RecvCase<detail::chan_value_t<C>, detail::NoAction>{ch.core(), {}, {}};
}
template <detail::RecvableChannel C, class F>
auto recv(const C& ch, F&& f) {
    return detail::RecvCase<detail::chan_value_t<C>, std::decay_t<F>>{ch.core(),
                                                                      std::forward<F>(f), {}};
}

// send() is the case `ch <- value`, optionally with a function to run once it is sent.
template <detail::SendableChannel C, class V>
auto send(const C& ch, V&& value) {
    return send(ch, std::forward<V>(value), detail::NoAction{});
}
template <detail::SendableChannel C, class V, class F>
auto send(const C& ch, V&& value, F&& f) {
    using T = detail::chan_value_t<C>;
    constexpr bool borrow = std::is_same_v<std::remove_cvref_t<V>, T> &&
                            !std::is_lvalue_reference_v<V> && !std::is_const_v<std::remove_reference_t<V>>;
    if constexpr (borrow) {
        return detail::SendCase<T, std::decay_t<F>, false>{ch.core(), &value, std::forward<F>(f)};
    } else {
        return detail::SendCase<T, std::decay_t<F>, true>{ch.core(), T(std::forward<V>(value)),
                                                          std::forward<F>(f)};
    }
}

// default_case() makes the select non-blocking: it runs when no other case is ready.
inline auto default_case() { return detail::DefaultCase<detail::NoAction>{}; }
template <class F>
auto default_case(F&& f) {
    return detail::DefaultCase<std::decay_t<F>>{std::forward<F>(f)};
}

// select() runs one ready case, parking until one is ready unless there is a default_case, and
// returns the index of the case that ran (its position among the arguments).
template <class... Cases>
std::size_t select(Cases&&... cases) {
    constexpr std::size_t n = sizeof...(Cases);
    if constexpr (n == 0) {
        detail::block_forever();
    } else {
        constexpr std::size_t ndefault = (std::size_t{0} + ... +
                                          (std::remove_cvref_t<Cases>::is_default ? 1 : 0));
        static_assert(ndefault <= 1, "select: at most one default_case");
        constexpr std::size_t nchan = n - ndefault;
        static_assert(nchan < 65536, "select: too many cases");
        auto all = std::forward_as_tuple(cases...);

        // chosen: index among all cases; run it.
        auto run = [&]<std::size_t... I>(std::size_t chosen, std::index_sequence<I...>) {
            ((I == chosen ? (std::get<I>(all).run(), 0) : 0), ...);
        };
        constexpr std::size_t default_index = [] {
            constexpr bool d[] = {std::remove_cvref_t<Cases>::is_default..., false};
            for (std::size_t i = 0; i < n; ++i)
                if (d[i]) return i;
            return n;
        }();

        if constexpr (nchan == 0) {
            run(default_index, std::index_sequence_for<Cases...>{});
            return default_index;
        } else if constexpr (nchan == 1) {
            // One channel operation: no shuffle, no multi-lock (selectnbsend and friends).
            constexpr std::size_t ci = default_index == 0 ? 1 : 0;
            auto& c = std::get<ci>(all);
            if constexpr (ndefault == 1) {
                if (!c.try_now()) {
                    run(default_index, std::index_sequence_for<Cases...>{});
                    return default_index;
                }
            } else {
                c.block();
            }
            c.run();
            return ci;
        } else {
            detail::SelectCase raw[nchan];
            std::size_t index[nchan];
            std::size_t k = 0;
            auto collect = [&]<std::size_t... I>(std::index_sequence<I...>) {
                ((std::remove_cvref_t<std::tuple_element_t<I, decltype(all)>>::is_default
                      ? void()
                      : (void)(index[k] = I, raw[k++] = detail::raw_of(std::get<I>(all)))),
                 ...);
            };
            collect(std::index_sequence_for<Cases...>{});
            detail::Waiter waiters[nchan];
            std::uint16_t order[2 * nchan];
            auto r = detail::selectgo(raw, waiters, order, static_cast<int>(nchan), ndefault == 0);
            std::size_t chosen = r.index < 0 ? default_index : index[r.index];
            run(chosen, std::index_sequence_for<Cases...>{});
            return chosen;
        }
    }
}

}  // namespace goro
