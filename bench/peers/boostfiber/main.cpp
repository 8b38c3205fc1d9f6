// The Boost.Fiber peer of goro's side-by-side benchmarks (bench/compare/run.py).
//
// Boost.Fiber set up the way its own skynet benchmarks are: the work_stealing algorithm on
// every hardware thread (the main thread plus hardware_concurrency()-1 others, each calling
// use_scheduling_algorithm<work_stealing>), detached fibers on fixedsize_stack stacks. The
// stacks are 16 KiB: Boost's skynet uses one page, 16 KiB leaves room for the library's own
// frames. They cannot grow (goro reserves 256 KiB per goroutine; Go copies stacks to grow).
// Idle threads sleep (work_stealing's suspend = true), as goro's and Go's workers do. With
// Boost's default, idle threads that poll, pingpong ran 2 to 24 times slower on this shared
// machine (7-15 s instead of 0.6-3.6 s, at a load of 7 on 2 cores): a polling thread holds the
// core its partner needs.
//
// Channels: unbuffered_channel where Go's is unbuffered. buffered_channel's capacity must be a
// power of two and it holds capacity - 1 values, so Go's capacity 1024 becomes
// buffered_channel(1024), holding 1023, and 128 becomes buffered_channel(128), holding 127: the
// nearest power of two, one value short. Boost has no WaitGroup; WaitGroup below is the same
// protocol as Go's (an atomic counter, a wake-up only at zero) on fiber::mutex and
// fiber::condition_variable.
//
// A channel must outlive every fiber still inside push() or close() on it (push() reads the
// channel after it is resumed), so the workloads wait for every fiber that touched a channel,
// and skynet's channels, which Go leaves to its garbage collector, are shared_ptrs.
#include "../peer.hpp"

#include <boost/fiber/all.hpp>

#include <atomic>
#include <barrier>
#include <memory>
#include <thread>
#include <vector>

namespace {

namespace bf = boost::fibers;

constexpr std::size_t stack_size = 16 * 1024;

template <class F>
void go(F&& f) {
    bf::fiber(std::allocator_arg, bf::fixedsize_stack(stack_size), std::forward<F>(f)).detach();
}

class WaitGroup {
public:
    explicit WaitGroup(std::int64_t n) : count_(n) {}
    void done() {
        if (count_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
        std::unique_lock lk(mu_);
        zero_ = true;
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return zero_; });
    }

private:
    std::atomic<std::int64_t> count_;
    bf::mutex mu_;
    bf::condition_variable cv_;
    bool zero_ = false;
};

using Chan = bf::unbuffered_channel<std::uint64_t>;

void skynet(std::shared_ptr<Chan> c, std::uint64_t num, std::uint64_t size, std::uint64_t div) {
    if (size == 1) {
        c->push(num);
        return;
    }
    auto rc = std::make_shared<Chan>();
    size /= div;
    for (std::uint64_t i = 0; i < div; ++i)
        go([rc, num, i, size, div] { skynet(rc, num + i * size, size, div); });
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < div; ++i) sum += rc->value_pop();
    c->push(sum);
}

void run_skynet() {
    auto c = std::make_shared<Chan>();
    go([c] { skynet(c, 0, peer::skynet_size, peer::skynet_div); });
    std::uint64_t sum = c->value_pop();
    if (sum != peer::sum_below(peer::skynet_size)) peer::fail("skynet", "sum", sum);
}

void run_spawn() {
    WaitGroup wg(peer::spawn_n);
    for (int i = 0; i < peer::spawn_n; ++i) go([&wg] { wg.done(); });
    wg.wait();
}

void run_pingpong() {
    Chan ping, pong;
    WaitGroup wg(2);
    go([&] {
        for (std::uint64_t i = 0; i < peer::pingpong_n; ++i) {
            ping.push(i);
            std::uint64_t v = pong.value_pop();
            if (v != i) peer::fail("pingpong", "got", v);
        }
        ping.close();
        wg.done();
    });
    go([&] {
        std::uint64_t v;
        while (ping.pop(v) == bf::channel_op_status::success) pong.push(v);
        wg.done();
    });
    wg.wait();
}

void run_buffered() {
    bf::buffered_channel<std::uint64_t> ch(peer::buffered_cap);
    WaitGroup wg(2);
    std::uint64_t sum = 0;
    go([&] {
        for (std::uint64_t i = 0; i < peer::buffered_n; ++i) ch.push(i);
        ch.close();
        wg.done();
    });
    go([&] {
        std::uint64_t v;
        while (ch.pop(v) == bf::channel_op_status::success) sum += v;
        wg.done();
    });
    wg.wait();
    if (sum != peer::sum_below(peer::buffered_n)) peer::fail("buffered", "sum", sum);
}

void run_mpmc() {
    bf::buffered_channel<std::uint64_t> ch(peer::mpmc_cap);
    WaitGroup producers(peer::mpmc_procs), consumers(peer::mpmc_procs);
    std::vector<std::uint64_t> sums(peer::mpmc_procs);
    const std::uint64_t per = peer::mpmc_n / peer::mpmc_procs;
    for (int p = 0; p < peer::mpmc_procs; ++p) {
        go([&, p] {
            for (std::uint64_t i = p * per; i < (p + 1) * per; ++i) ch.push(i);
            producers.done();
        });
    }
    for (int c = 0; c < peer::mpmc_procs; ++c) {
        go([&, c] {
            std::uint64_t v, s = 0;
            while (ch.pop(v) == bf::channel_op_status::success) s += v;
            sums[c] = s;
            consumers.done();
        });
    }
    producers.wait();
    ch.close();
    consumers.wait();
    std::uint64_t total = 0;
    for (auto s : sums) total += s;
    if (total != peer::sum_below(peer::mpmc_n)) peer::fail("mpmc", "sum", total);
}

long run_idle() {
    Chan gate;
    WaitGroup started(peer::idle_n), finished(peer::idle_n);
    long base = peer::status_kb("VmRSS");
    for (int i = 0; i < peer::idle_n; ++i) {
        go([&] {
            started.done();
            std::uint64_t v;
            if (gate.pop(v) != bf::channel_op_status::closed) peer::fail("idle", "received", v);
            finished.done();
        });
    }
    started.wait();
    boost::this_fiber::sleep_for(std::chrono::milliseconds(10));  // the last ones reach pop()
    long peak = peer::status_kb("VmHWM");
    gate.close();
    finished.wait();
    return (peak - base) * 1024 / peer::idle_n;
}

}  // namespace

int main(int argc, char** argv) {
    const unsigned n = std::max(1u, std::thread::hardware_concurrency());
    std::barrier registered(n);
    bf::mutex mu;
    bf::condition_variable cv;
    bool stop = false;
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < n; ++i) {
        threads.emplace_back([&] {
            bf::use_scheduling_algorithm<bf::algo::work_stealing>(n, true);
            registered.arrive_and_wait();
            std::unique_lock lk(mu);
            cv.wait(lk, [&] { return stop; });
        });
    }
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(n, true);
    registered.arrive_and_wait();

    int status = peer::run(argc, argv,
                           {{{"skynet", run_skynet},
                             {"spawn", run_spawn},
                             {"pingpong", run_pingpong},
                             {"buffered", run_buffered},
                             {"mpmc", run_mpmc}},
                            run_idle});
    {
        std::unique_lock lk(mu);
        stop = true;
        cv.notify_all();
    }
    for (auto& t : threads) t.join();
    return status;
}
