// tests/channel_test.cpp: channels. Ports of Go's test/chan programs and of runtime/chan_test.go,
// plus what the C++ surface adds (move-only and empty element types, the send/receive views,
// exceptions, plain threads).
#include <goro/goro.hpp>

#include <catch2/catch.hpp>

#include "run_util.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using goro::Channel;
using goro::RecvChannel;
using goro::SendChannel;

namespace {

// ready_to_recv() is Go's `select { case v, ok := <-ch: ...; default: }`: did a receive happen?
template <class C>
bool nonblocking_recv(const C& ch) {
    return goro::select(goro::recv(ch), goro::default_case()) == 0;
}

}  // namespace

// ---- test/chan/fifo.go ----

TEST_CASE("fifo: buffered and daisy-chained FIFO order", "[chan][gotest]") {
    constexpr int N = 10;
    goro_test::on_thread_and_goroutine([] {
        // AsynchFifo
        Channel<int> ch(N);
        for (int i = 0; i < N; ++i) ch.send(i);
        for (int i = 0; i < N; ++i) REQUIRE(ch.recv() == i);

        // SynchFifo: each Chain goroutine waits for its turn, then receives one value.
        Channel<int> values;
        std::atomic<int> bad{0};
        auto chain = [&bad](RecvChannel<int> ch, int val, RecvChannel<int> in, SendChannel<int> out) {
            in.recv();
            if (ch.recv() != val) ++bad;
            out.send(1);
        };
        Channel<int> in;
        Channel<int> start = in;
        for (int i = 0; i < N; ++i) {
            Channel<int> out;
            goro::go(chain, values, i, in, out);
            in = out;
        }
        start.send(0);
        for (int i = 0; i < N; ++i) values.send(i);
        REQUIRE(in.recv() == 1);
        REQUIRE(bad == 0);
    });
}

// ---- test/chan/goroutines.go ----

TEST_CASE("goroutines: a daisy chain of goroutines passes one value", "[chan][gotest]") {
    const int n = goro_test::scaled(10000);
    Channel<int> leftmost;
    Channel<int> left = leftmost, right = leftmost;
    for (int i = 0; i < n; ++i) {
        right = Channel<int>();
        goro::go([](Channel<int> l, Channel<int> r) { l.send(*r.recv()); }, left, right);
        left = right;
    }
    goro::go([](Channel<int> c) { c.send(1); }, right);
    REQUIRE(leftmost.recv() == 1);
}

// ---- test/chan/nonblock.go ----

namespace {

// nonblock_round() is one type's part of nonblock.go: non-blocking sends and receives polled
// against a goroutine that does the blocking counterpart.
template <class T>
void nonblock_round(std::size_t buffer, T to_receiver, T from_sender) {
    Channel<T> c(buffer);
    Channel<bool> sync;
    const auto limit = goro::Clock::now() + 10s;  // Go allows 10,000 tries of ~10us
    auto pause = [] {
        goro::sleep_for(10us);
        for (int i = 0; i < 3; ++i) goro::yield();
    };

    REQUIRE(goro::select(goro::recv(c, [](std::optional<T>) { FAIL("blocked sender"); }),
                         goro::default_case()) == 1);

    std::atomic<bool> receiver_ok{false};
    goro::go([&receiver_ok, c, sync, to_receiver] {
        receiver_ok = c.recv() == to_receiver;
        sync.send(true);
    });
    while (goro::select(goro::send(c, T(to_receiver)), goro::default_case()) != 0) {
        REQUIRE(goro::Clock::now() < limit);
        pause();
    }
    sync.recv();
    REQUIRE(receiver_ok);

    goro::go([c, sync, from_sender] {
        c.send(from_sender);
        sync.send(true);
    });
    if (buffer > 0) sync.recv();
    std::optional<T> got;
    while (goro::select(goro::recv(c, [&](std::optional<T> v) { got = std::move(v); }),
                        goro::default_case()) != 0) {
        REQUIRE(goro::Clock::now() < limit);
        pause();
    }
    REQUIRE(got == from_sender);
    if (buffer == 0) sync.recv();
}

}  // namespace

TEST_CASE("nonblock: non-blocking send and receive through select with default",
          "[chan][select][gotest]") {
    goro_test::on_thread_and_goroutine([] {
        for (std::size_t buffer = 0; buffer < 2; ++buffer) {
            nonblock_round<std::int32_t>(buffer, 123, 234);
            nonblock_round<std::int64_t>(buffer, 123456, 234567);
            nonblock_round<bool>(buffer, true, true);
            nonblock_round<std::string>(buffer, "hello", "hello again");
        }
    });
}

// ---- test/chan/sendstmt.go ----

TEST_CASE("sendstmt: a channel of channels, and the sent expression", "[chan][gotest]") {
    // chanchan: select { case <-cc <- 2: default: panic }
    Channel<Channel<int>> cc(1);
    Channel<int> c(1);
    cc.send(c);
    REQUIRE(goro::select(goro::send(*cc.recv(), 2), goro::default_case([] { FAIL("nonblock"); })) ==
            0);
    REQUIRE(c.recv() == 2);

    // sendprec: c <- false || true
    Channel<bool> b(1);
    b.send(false || true);
    REQUIRE(b.recv() == true);
}

// ---- test/chan/sieve1.go ----

TEST_CASE("sieve1: the concurrent prime sieve", "[chan][gotest]") {
    // As in Go, with one addition so the goroutines end: a quit channel stops the generator,
    // which closes its output, and every filter's range loop ends and closes its own output.
    Channel<int> primes;
    Channel<std::monostate> quit;
    Channel<std::monostate> finished;

    auto generate = [](SendChannel<int> ch, RecvChannel<std::monostate> quit) {
        for (int i = 2;; ++i) {
            if (goro::select(goro::send(ch, int(i)), goro::recv(quit)) == 1) break;
        }
        ch.close();
    };
    auto filter = [](RecvChannel<int> in, SendChannel<int> out, int prime) {
        for (int i : in)
            if (i % prime != 0) out.send(i);
        out.close();
    };
    goro::go([=] {
        Channel<int> ch;
        goro::go(generate, ch, quit);
        for (;;) {
            int prime = *ch.recv();
            if (goro::select(goro::send(primes, int(prime)), goro::recv(quit)) == 1) break;
            Channel<int> ch1;
            goro::go(filter, ch, ch1, prime);
            ch = ch1;
        }
        for (int v : ch) (void)v;  // drain until the chain has shut down
        finished.send({});
    });

    const int want[] = {2,  3,  5,  7,  11, 13, 17, 19, 23, 29, 31, 37, 41,
                        43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97};
    for (int p : want) REQUIRE(primes.recv() == p);
    quit.close();
    REQUIRE(finished.recv().has_value());
}

// ---- test/chan/zerosize.go ----

namespace {
struct Empty {};
}  // namespace

TEST_CASE("zerosize: channels of empty types", "[chan][gotest]") {
    Channel<std::array<char, 0>> a;          // chan [0]byte
    Channel<std::array<char, 0>> a1(1);      // chan [0]byte, 1
    Channel<Empty> e;                        // chan struct{}
    Channel<Empty> e1(1);                    // chan struct{}, 1
    Channel<std::monostate> m(1000);
    REQUIRE(a.capacity() == 0);
    REQUIRE(a1.capacity() == 1);
    REQUIRE(e.capacity() == 0);
    REQUIRE(e1.capacity() == 1);

    a1.send({});
    REQUIRE(a1.size() == 1);
    REQUIRE(a1.recv().has_value());
    e1.send(Empty{});
    REQUIRE(e1.recv().has_value());

    for (int i = 0; i < 1000; ++i) m.send(std::monostate{});
    REQUIRE(m.size() == 1000);
    m.close();
    int n = 0;
    for (std::monostate v : m) {
        (void)v;
        ++n;
    }
    REQUIRE(n == 1000);

    // Unbuffered empty values as pure signals.
    goro::go([e] { e.send({}); });
    REQUIRE(e.recv().has_value());
    goro::go([a] { a.close(); });
    REQUIRE_FALSE(a.recv().has_value());
}

// ---- test/chan/perm.go: direction is checked at compile time ----

namespace {

template <class C> concept CanSend = requires(const C& c, int v) { c.send(v); };
template <class C> concept CanRecv = requires(const C& c) { c.recv(); };
template <class C> concept CanClose = requires(const C& c) { c.close(); };
template <class C> concept CanRange = requires(const C& c) { c.begin(); c.end(); };
template <class C> concept CanSize = requires(const C& c) {
    { c.size() } -> std::convertible_to<std::size_t>;
    { c.capacity() } -> std::convertible_to<std::size_t>;
};
template <class C> concept CanSelectSend = requires(const C& c) { goro::send(c, 0); };
template <class C> concept CanSelectRecv = requires(const C& c) { goro::recv(c); };

// cr = c, cs = c: ok
static_assert(std::is_convertible_v<Channel<int>, SendChannel<int>>);
static_assert(std::is_convertible_v<Channel<int>, RecvChannel<int>>);
// c = cr, c = cs, cr = cs, cs = cr: errors, explicitly or not
static_assert(!std::is_convertible_v<SendChannel<int>, Channel<int>>);
static_assert(!std::is_convertible_v<RecvChannel<int>, Channel<int>>);
static_assert(!std::is_constructible_v<Channel<int>, SendChannel<int>>);
static_assert(!std::is_constructible_v<Channel<int>, RecvChannel<int>>);
static_assert(!std::is_constructible_v<SendChannel<int>, RecvChannel<int>>);
static_assert(!std::is_constructible_v<RecvChannel<int>, SendChannel<int>>);
// Element types are not converted either: chan int is not chan<- long.
static_assert(!std::is_convertible_v<Channel<int>, SendChannel<long>>);

static_assert(CanSend<Channel<int>> && CanRecv<Channel<int>> && CanClose<Channel<int>>);
static_assert(CanRange<Channel<int>> && CanSize<Channel<int>>);
// cs <- 0 ok; <-cs, range cs: errors; close(cs) ok
static_assert(CanSend<SendChannel<int>> && CanClose<SendChannel<int>> && CanSize<SendChannel<int>>);
static_assert(!CanRecv<SendChannel<int>> && !CanRange<SendChannel<int>>);
// <-cr, range cr ok; cr <- 0, close(cr): errors
static_assert(CanRecv<RecvChannel<int>> && CanRange<RecvChannel<int>> && CanSize<RecvChannel<int>>);
static_assert(!CanSend<RecvChannel<int>> && !CanClose<RecvChannel<int>>);
// Every operation is const, so a by-value lambda capture needs no `mutable`.
static_assert(std::is_copy_constructible_v<Channel<int>> && std::is_copy_assignable_v<Channel<int>>);

}  // namespace

TEST_CASE("perm: select cases respect the channel's direction", "[chan][select][gotest]") {
    // In select, `case cr <- 0` and `case x := <-cs` are compile errors in Go. These are
    // compile-time facts, checked at run time so that one gap does not hide every other test.
    CHECK(CanSelectSend<Channel<int>>);
    CHECK(CanSelectRecv<Channel<int>>);
    CHECK(CanSelectSend<SendChannel<int>>);
    CHECK(CanSelectRecv<RecvChannel<int>>);
    CHECK_FALSE(CanSelectSend<RecvChannel<int>>);
    CHECK_FALSE(CanSelectRecv<SendChannel<int>>);
}

// ---- runtime/chan_test.go: TestChan ----

namespace {

void test_chan_cap(std::size_t cap) {
    INFO("chan[" << cap << "]");
    {
        // Receive from an empty channel blocks; a non-blocking receive does not.
        Channel<int> c(cap);
        std::atomic<bool> recv1{false}, recv2{false};
        goro::WaitGroup wg;
        wg.add(2);
        goro::go([&, c] {
            c.recv();
            recv1 = true;
            wg.done();
        });
        goro::go([&, c] {
            (void)c.recv().has_value();
            recv2 = true;
            wg.done();
        });
        goro::sleep_for(1ms);
        REQUIRE_FALSE(recv1);
        REQUIRE_FALSE(recv2);
        REQUIRE_FALSE(nonblocking_recv(c));
        REQUIRE(goro::select(goro::recv(c, [](std::optional<int>) {}), goro::default_case()) == 1);
        c.send(0);
        c.send(0);
        wg.wait();
    }
    {
        // Send to a full channel blocks; a non-blocking send does not.
        Channel<int> c(cap);
        for (std::size_t i = 0; i < cap; ++i) c.send(int(i));
        std::atomic<bool> sent{false};
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([&, c] {
            c.send(0);
            sent = true;
            wg.done();
        });
        goro::sleep_for(1ms);
        REQUIRE_FALSE(sent);
        REQUIRE(goro::select(goro::send(c, 0), goro::default_case()) == 1);
        c.recv();
        wg.wait();
        REQUIRE(sent);
    }
    {
        // A closed channel yields its buffered values, then nullopt.
        Channel<int> c(cap);
        for (std::size_t i = 0; i < cap; ++i) c.send(int(i));
        c.close();
        for (std::size_t i = 0; i < cap; ++i) REQUIRE(c.recv() == int(i));
        REQUIRE(c.recv() == std::nullopt);
        REQUIRE(c.recv() == std::nullopt);
    }
    {
        // Close unblocks a receive.
        Channel<int> c(cap);
        Channel<bool> done;
        goro::go([c, done] { done.send(!c.recv().has_value()); });
        goro::sleep_for(1ms);
        c.close();
        REQUIRE(done.recv() == true);
    }
    {
        // 100 integers arrive uncorrupted and in FIFO order.
        Channel<int> c(cap);
        for (int round = 0; round < 2; ++round) {
            goro::go([c] {
                for (int i = 0; i < 100; ++i) c.send(i);
            });
            for (int i = 0; i < 100; ++i) REQUIRE(c.recv() == i);
        }

        // 4 goroutines send 1000 integers each; 4 receive them; everything arrives once per sender.
        constexpr int P = 4, L = 1000;
        for (int p = 0; p < P; ++p)
            goro::go([c] {
                for (int i = 0; i < L; ++i) c.send(i);
            });
        Channel<std::map<int, int>> done;
        for (int p = 0; p < P; ++p)
            goro::go([c, done] {
                std::map<int, int> recv;
                for (int i = 0; i < L; ++i) ++recv[*c.recv()];
                done.send(std::move(recv));
            });
        std::map<int, int> recv;
        for (int p = 0; p < P; ++p) {
            std::map<int, int> part = *done.recv();
            for (auto [k, v] : part) recv[k] += v;
        }
        REQUIRE(recv.size() == std::size_t(L));
        for (auto [k, v] : recv) REQUIRE(v == P);
    }
    {
        // len and cap.
        Channel<int> c(cap);
        REQUIRE(c.size() == 0);
        REQUIRE(c.capacity() == cap);
        for (std::size_t i = 0; i < cap; ++i) c.send(int(i));
        REQUIRE(c.size() == cap);
        REQUIRE(c.capacity() == cap);
    }
}

}  // namespace

TEST_CASE("TestChan: every capacity from 0 to 199", "[chan][gotest]") {
    for (std::size_t cap = 0; cap < 200; ++cap) test_chan_cap(cap);
}

TEST_CASE("TestChan: on a goroutine", "[chan][gotest]") {
    goro_test::run_in_goroutine([] {
        for (std::size_t cap : {0, 1, 2, 7, 64, 199}) test_chan_cap(cap);
    });
}

// ---- runtime/chan_test.go: TestNonblockRecvRace ----

TEST_CASE("TestNonblockRecvRace: a closed channel is ready for a non-blocking receive",
          "[chan][select][gotest]") {
    const int n = goro_test::scaled(10000);
    std::atomic<int> not_ready{0};
    goro::WaitGroup wg;
    for (int i = 0; i < n; ++i) {
        Channel<int> c(1);
        c.send(1);
        wg.add(1);
        goro::go([c, &not_ready, &wg] {
            if (!nonblocking_recv(c)) ++not_ready;
            wg.done();
        });
        c.close();
        c.recv();
    }
    wg.wait();
    REQUIRE(not_ready == 0);
}

// ---- runtime/chan_test.go: TestMultiConsumer ----

TEST_CASE("TestMultiConsumer: range over a shared work queue", "[chan][gotest]") {
    constexpr int nwork = 23;
    const int niter = goro_test::scaled(271828);
    static constexpr int pn[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
    constexpr int npn = sizeof pn / sizeof pn[0];

    Channel<int> q(nwork * 3);
    Channel<int> r(nwork * 3);
    goro::WaitGroup wg;
    for (int i = 0; i < nwork; ++i) {
        wg.add(1);
        goro::go([q, r, &wg](int w) {
            for (int v : q) {
                if (pn[w % npn] == v) goro::yield();  // mess with the FIFO-ish nature of range
                r.send(v);
            }
            wg.done();
        }, i);
    }

    long long expect = 0;  // written by the feeder before it closes r; read after range r ends
    goro::go([&, q, r] {
        for (int i = 0; i < niter; ++i) {
            int v = pn[i % npn];
            expect += v;
            q.send(v);
        }
        q.close();
        wg.wait();
        r.close();
    });

    long long n = 0, s = 0;
    for (int v : r) {
        ++n;
        s += v;
    }
    REQUIRE(n == niter);
    REQUIRE(s == expect);
}

// ---- runtime/chan_test.go: TestPseudoRandomSend ----

TEST_CASE("TestPseudoRandomSend: select among sends on one channel is random", "[chan][select][gotest]") {
    constexpr int n = 100;
    for (std::size_t cap : {std::size_t(0), std::size_t(n)}) {
        INFO("chan cap " << cap);
        Channel<int> c(cap);
        std::vector<int> l(n);
        Channel<std::monostate> done;
        goro::go([&, c, done] {
            for (int i = 0; i < n; ++i) {
                goro::yield();
                l[i] = *c.recv();
            }
            done.send({});
        });
        for (int i = 0; i < n; ++i) goro::select(goro::send(c, 1), goro::send(c, 0));
        done.recv();
        int n0 = 0, n1 = 0;
        for (int v : l) {
            n0 += (v + 1) % 2;
            n1 += v;
        }
        INFO(n0 << " zeros and " << n1 << " ones");
        CHECK(n0 > n / 10);
        CHECK(n1 > n / 10);
    }
}

// ---- The C++ surface ----

namespace {

struct Counted {
    static inline std::atomic<int> live{0};
    int v;
    explicit Counted(int x) : v(x) { ++live; }
    Counted(const Counted& o) : v(o.v) { ++live; }
    Counted(Counted&& o) noexcept : v(o.v) { ++live; }
    ~Counted() { --live; }
};

struct NoDefault {
    explicit NoDefault(int x) : v(x) {}
    int v;
};

}  // namespace

TEST_CASE("move-only elements: std::unique_ptr<int>", "[chan]") {
    goro_test::on_thread_and_goroutine([] {
        Channel<std::unique_ptr<int>> buffered(3);
        for (int i = 0; i < 3; ++i) buffered.send(std::make_unique<int>(i));
        for (int i = 0; i < 3; ++i) {
            std::optional<std::unique_ptr<int>> p = buffered.recv();
            REQUIRE(p.has_value());
            REQUIRE(*p != nullptr);
            REQUIRE(**p == i);
        }

        Channel<std::unique_ptr<int>> unbuffered;
        goro::go([unbuffered] {
            for (int i = 0; i < 10; ++i) unbuffered.send(std::make_unique<int>(i));
            unbuffered.close();
        });
        int want = 0;
        for (auto&& p : unbuffered) {  // values are moved out of the channel
            REQUIRE(p != nullptr);
            REQUIRE(*p == want++);
        }
        REQUIRE(want == 10);

        // select moves the value in and out.
        Channel<std::unique_ptr<int>> c(1);
        REQUIRE(goro::select(goro::send(c, std::make_unique<int>(42))) == 0);
        std::unique_ptr<int> got;
        REQUIRE(goro::select(goro::recv(c, [&](std::optional<std::unique_ptr<int>> v) {
                    got = std::move(*v);
                })) == 0);
        REQUIRE(got != nullptr);
        REQUIRE(*got == 42);
    });
}

namespace {

// range_by_value() ranges with `for (P v : c)`; a template so that the loop is only compiled
// when the iterator allows it, and the test can report the gap instead of breaking the build.
template <class P>
void range_by_value() {
    using Deref = decltype(*std::declval<Channel<P>>().begin());
    CHECK(std::is_constructible_v<P, Deref>);
    if constexpr (std::is_constructible_v<P, Deref>) {
        Channel<P> c(2);
        c.send(std::make_unique<int>(1));
        c.send(std::make_unique<int>(2));
        c.close();
        int sum = 0;
        for (P v : c) sum += *v;
        CHECK(sum == 3);
    }
}

}  // namespace

TEST_CASE("range-for by value over a channel of a move-only type", "[chan]") {
    // API.md: `for (T v : ch)` ranges, and T may be move-only, so `for (std::unique_ptr<X> v : ch)`
    // must compile: the iterator's operator* must give something T can be built from.
    range_by_value<std::unique_ptr<int>>();
}

TEST_CASE("elements without a default constructor, and element lifetimes", "[chan]") {
    Channel<NoDefault> c(2);
    c.send(NoDefault(7));
    REQUIRE(c.recv()->v == 7);

    REQUIRE(Counted::live == 0);
    {
        Channel<Counted> k(10);
        for (int i = 0; i < 5; ++i) k.send(Counted(i));
        REQUIRE(Counted::live == 5);
        REQUIRE(k.recv()->v == 0);
        REQUIRE(Counted::live == 4);
        k.close();  // buffered values stay receivable after close
        REQUIRE(Counted::live == 4);
    }
    // The last handle is gone: values still buffered are destroyed with the channel.
    REQUIRE(Counted::live == 0);
    {
        Channel<Counted> k;
        goro::go([k] { k.send(Counted(1)); });
        REQUIRE(k.recv()->v == 1);
    }
    REQUIRE(goro_test::poll_until([] { return Counted::live == 0; }));
}

namespace {
// Line is over-aligned; its move constructor counts the places it was built at that are not
// aligned for it (a channel's buffer slots among them).
struct alignas(64) Line {
    static inline std::atomic<int> misaligned{0};
    long v[8] = {};
    Line() = default;
    Line(Line&& o) noexcept {
        if (reinterpret_cast<std::uintptr_t>(this) % alignof(Line) != 0) ++misaligned;
        std::copy(std::begin(o.v), std::end(o.v), v);
    }
};
}  // namespace

TEST_CASE("buffers of over-aligned element types are aligned", "[chan]") {
    // Repro t_chan_align: the buffer sat at an offset rounded to alignof(T) from a 16-byte
    // aligned allocation, so 64 of 64 buffers of a 64-byte-aligned type were misaligned.
    Line::misaligned = 0;
    for (std::size_t cap : {1, 3, 4, 17}) {
        for (int i = 0; i < 16; ++i) {
            Channel<Line> ch(cap);
            for (std::size_t k = 0; k < cap; ++k) {
                Line l;
                l.v[0] = static_cast<long>(k);
                ch.send(std::move(l));
            }
            for (std::size_t k = 0; k < cap; ++k) REQUIRE(ch.recv()->v[0] == static_cast<long>(k));
        }
    }
    REQUIRE(Line::misaligned == 0);
}

TEST_CASE("range-for receives until closed and drained", "[chan]") {
    goro_test::on_thread_and_goroutine([] {
        Channel<int> ch(7);
        goro::go([ch] {
            for (int i = 0; i < 100; ++i) ch.send(i);
            ch.close();
        });
        int want = 0;
        for (int v : ch) REQUIRE(v == want++);
        REQUIRE(want == 100);

        // Through the receive-only view, and over a channel closed with values still buffered.
        Channel<int> b(5);
        for (int i = 0; i < 5; ++i) b.send(i);
        b.close();
        RecvChannel<int> r = b;
        int sum = 0;
        for (int v : r) sum += v;
        REQUIRE(sum == 10);
        // An empty closed channel ranges zero times.
        for (int v : r) FAIL("ranged over a drained channel: " << v);
    });
}

TEST_CASE("buffered values are delivered after close", "[chan]") {
    Channel<std::string> c(3);
    c.send("a");
    c.send("b");
    c.send("c");
    c.close();
    REQUIRE(c.size() == 3);
    REQUIRE(c.recv() == "a");
    REQUIRE(c.size() == 2);
    REQUIRE(c.recv() == "b");
    REQUIRE(c.recv() == "c");
    REQUIRE(c.size() == 0);
    REQUIRE(c.recv() == std::nullopt);
    REQUIRE(c.recv() == std::nullopt);
}

TEST_CASE("send on a closed channel throws ChannelClosed", "[chan]") {
    static_assert(std::is_base_of_v<std::logic_error, goro::ChannelClosed>);
    goro_test::on_thread_and_goroutine([] {
        Channel<int> unbuffered;
        unbuffered.close();
        REQUIRE_THROWS_AS(unbuffered.send(1), goro::ChannelClosed);

        Channel<int> room(4);  // room in the buffer does not matter
        room.send(1);
        room.close();
        REQUIRE_THROWS_AS(room.send(2), goro::ChannelClosed);
        REQUIRE_THROWS_AS(SendChannel<int>(room).send(2), goro::ChannelClosed);
        REQUIRE(room.recv() == 1);  // the value sent before close survives
        REQUIRE(room.recv() == std::nullopt);

        try {
            room.send(3);
            FAIL("no exception");
        } catch (const std::logic_error& e) {
            CHECK(std::string(e.what()) == "send on closed channel");  // Go's words
        }
    });
}

TEST_CASE("close of a closed or nil channel throws ChannelClosed", "[chan]") {
    Channel<int> c(1);
    c.close();
    REQUIRE_THROWS_AS(c.close(), goro::ChannelClosed);
    REQUIRE_THROWS_AS(SendChannel<int>(c).close(), goro::ChannelClosed);
    try {
        c.close();
    } catch (const goro::ChannelClosed& e) {
        CHECK(std::string(e.what()) == "close of closed channel");
    }
    auto nil = Channel<int>::nil();
    REQUIRE_THROWS_AS(nil.close(), goro::ChannelClosed);
    try {
        nil.close();
    } catch (const goro::ChannelClosed& e) {
        CHECK(std::string(e.what()) == "close of nil channel");
    }
}

TEST_CASE("close wakes every blocked receiver with nullopt and every blocked sender with ChannelClosed",
          "[chan]") {
    constexpr int n = 8;
    Channel<int> rc;  // receivers wait here
    Channel<int> sc;  // senders wait here
    std::atomic<int> woke_empty{0}, threw{0}, parked{0};
    goro::WaitGroup wg;
    wg.add(2 * n);
    for (int i = 0; i < n; ++i) {
        goro::go([&, rc] {
            ++parked;
            if (!rc.recv()) ++woke_empty;
            wg.done();
        });
        goro::go([&, sc, i] {
            ++parked;
            try {
                sc.send(i);
            } catch (const goro::ChannelClosed&) {
                ++threw;
            }
            wg.done();
        });
    }
    REQUIRE(goro_test::poll_until([&] { return parked == 2 * n; }));
    goro::sleep_for(10ms);  // let them park
    rc.close();
    sc.close();
    wg.wait();
    REQUIRE(woke_empty == n);
    REQUIRE(threw == n);
}

TEST_CASE("recv on a closed channel returns nullopt", "[chan]") {
    Channel<int> c;
    c.close();
    for (int i = 0; i < 3; ++i) REQUIRE_FALSE(c.recv().has_value());
    RecvChannel<int> r = c;
    REQUIRE_FALSE(r.recv().has_value());
}

TEST_CASE("the nil channel is never ready", "[chan][select]") {
    auto nil = Channel<int>::nil();
    REQUIRE(nil == Channel<int>::nil());
    REQUIRE_FALSE(nil == Channel<int>());
    REQUIRE(nil.size() == 0);
    REQUIRE(nil.capacity() == 0);
    REQUIRE(goro::select(goro::recv(nil), goro::default_case()) == 1);
    REQUIRE(goro::select(goro::send(nil, 1), goro::default_case()) == 1);
    REQUIRE(goro::select(goro::default_case(), goro::recv(nil), goro::send(nil, 2)) == 0);

    // Blocking on nil together with a channel that becomes ready: only the latter is chosen.
    goro_test::on_thread_and_goroutine([nil] {
        for (int i = 0; i < 20; ++i) {
            Channel<int> c;
            goro::go([c] {
                goro::sleep_for(1ms);
                c.send(5);
            });
            int got = 0;
            REQUIRE(goro::select(goro::recv(nil), goro::send(nil, 1),
                                 goro::recv(c, [&](std::optional<int> v) { got = *v; })) == 2);
            REQUIRE(got == 5);
        }
    });
}

TEST_CASE("an unbuffered send returns only after a receiver took the value", "[chan]") {
    goro_test::on_thread_and_goroutine([] {
        Channel<int> c;
        std::atomic<bool> sent{false};
        goro::go([c, &sent] {
            c.send(1);
            sent = true;
        });
        goro::sleep_for(20ms);
        REQUIRE_FALSE(sent);  // nobody has received yet
        REQUIRE(c.size() == 0);
        REQUIRE(c.recv() == 1);
        REQUIRE(goro_test::poll_until([&] { return sent.load(); }));

        // The other way round: a receiver that arrives first blocks until the send.
        std::atomic<bool> received{false};
        goro::go([c, &received] {
            c.recv();
            received = true;
        });
        goro::sleep_for(20ms);
        REQUIRE_FALSE(received);
        c.send(9);
        REQUIRE(goro_test::poll_until([&] { return received.load(); }));
    });
}

TEST_CASE("channel handles: equality, and copies share the channel", "[chan]") {
    Channel<int> a(2);
    Channel<int> b = a;
    Channel<int> other(2);
    REQUIRE(a == b);
    REQUIRE_FALSE(a == other);
    b.send(1);
    REQUIRE(a.size() == 1);
    REQUIRE(a.recv() == 1);

    SendChannel<int> s = a;
    RecvChannel<int> r = a;
    s.send(2);
    REQUIRE(r.size() == 1);
    REQUIRE(a.size() == 1);
    REQUIRE(r.recv() == 2);
    REQUIRE(r.capacity() == 2);
    REQUIRE(s.capacity() == 2);

    // Assignment rebinds the handle; the old channel lives on through its other handles.
    b = other;
    REQUIRE(b == other);
    REQUIRE_FALSE(b == a);
    s.close();
    REQUIRE(a.recv() == std::nullopt);
    REQUIRE_NOTHROW(b.send(3));  // `other` was not closed
    REQUIRE(other.recv() == 3);

    // The channel outlives the handle it was made from.
    RecvChannel<int> survivor;
    {
        Channel<int> temp(1);
        temp.send(11);
        survivor = temp;
    }
    REQUIRE(survivor.recv() == 11);
}

TEST_CASE("size and capacity", "[chan]") {
    Channel<int> c(5);
    REQUIRE(c.capacity() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        REQUIRE(c.size() == i);
        c.send(int(i));
    }
    REQUIRE(c.size() == 5);
    for (std::size_t i = 5; i > 0; --i) {
        REQUIRE(c.size() == i);
        c.recv();
    }
    REQUIRE(c.size() == 0);

    // A sender parked on an unbuffered channel is not counted in len.
    Channel<int> u;
    REQUIRE(u.capacity() == 0);
    goro::go([u] { u.send(1); });
    goro::sleep_for(5ms);
    REQUIRE(u.size() == 0);
    REQUIRE(u.recv() == 1);

    // make(chan T, n) with an absurd n panics in Go ("makechan: size out of range").
    REQUIRE_THROWS(Channel<int>(std::size_t(-1)));
}

TEST_CASE("plain threads and goroutines share channels", "[chan][thread]") {
    const int per = goro_test::scaled(2000);
    constexpr int producers = 2;  // of each kind
    Channel<int> c(3);
    Channel<long long> sums;
    goro::WaitGroup sent;
    sent.add(2 * producers);
    auto produce = [c, &sent, per] {
        for (int i = 1; i <= per; ++i) c.send(i);
        sent.done();
    };
    auto consume = [c, sums] {
        long long s = 0;
        for (int v : c) s += v;
        sums.send(s);
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < producers; ++i) {
        threads.emplace_back(produce);
        goro::go(produce);
        threads.emplace_back(consume);
        goro::go(consume);
    }
    std::thread closer([&] {
        sent.wait();
        c.close();
    });
    long long total = 0;
    for (int i = 0; i < 2 * producers; ++i) total += *sums.recv();
    closer.join();
    for (auto& t : threads) t.join();
    REQUIRE(total == 2LL * producers * per * (per + 1) / 2);

    // Ping-pong between a plain thread and a goroutine over unbuffered channels.
    Channel<int> ping, pong;
    const int rounds = goro_test::scaled(2000);
    goro::go([ping, pong] {
        for (int v : ping) pong.send(v + 1);
        pong.close();
    });
    bool all_rounds_ok = true;
    std::thread player([ping, pong, rounds, &all_rounds_ok] {
        for (int i = 0; i < rounds && all_rounds_ok; ++i) {
            ping.send(i);
            all_rounds_ok = pong.recv() == i + 1;
        }
        ping.close();
    });
    player.join();
    REQUIRE(all_rounds_ok);
    REQUIRE(pong.recv() == std::nullopt);  // the goroutine's range ended and it closed pong
}
