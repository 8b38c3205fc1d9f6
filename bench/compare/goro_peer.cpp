// goro's peer in the side-by-side benchmarks (bench/compare/run.py): the workloads of
// bench/peers/go/main.go, line for line, against goro's public API.
#include "../peers/peer.hpp"

#include <goro/go.hpp>
#include <goro/sync.hpp>

#include <goro/channel.hpp>

#include <thread>
#include <vector>

namespace {

void run_spawn() {
    goro::WaitGroup wg;
    wg.add(peer::spawn_n);
    for (int i = 0; i < peer::spawn_n; ++i) goro::go([&wg] { wg.done(); });
    wg.wait();
}

void skynet(goro::Channel<std::uint64_t> c, std::uint64_t num, std::uint64_t size,
            std::uint64_t div) {
    if (size == 1) {
        c.send(num);
        return;
    }
    goro::Channel<std::uint64_t> rc;
    size /= div;
    for (std::uint64_t i = 0; i < div; ++i) goro::go(skynet, rc, num + i * size, size, div);
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < div; ++i) sum += *rc.recv();
    c.send(sum);
}

void run_skynet() {
    goro::Channel<std::uint64_t> c;
    goro::go(skynet, c, 0, peer::skynet_size, peer::skynet_div);
    std::uint64_t sum = *c.recv();
    if (sum != peer::sum_below(peer::skynet_size)) peer::fail("skynet", "sum", sum);
}

void run_pingpong() {
    goro::Channel<int> ping, pong;
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
        for (int i = 0; i < peer::pingpong_n; ++i) {
            ping.send(i);
            int v = *pong.recv();
            if (v != i) peer::fail("pingpong", "got", v);
        }
        ping.close();
        wg.done();
    });
    goro::go([&] {
        for (int v : ping) pong.send(v);
        wg.done();
    });
    wg.wait();
}

void run_buffered() {
    goro::Channel<std::uint64_t> ch(peer::buffered_cap);
    goro::WaitGroup wg;
    wg.add(2);
    std::uint64_t sum = 0;
    goro::go([&] {
        for (std::uint64_t i = 0; i < peer::buffered_n; ++i) ch.send(i);
        ch.close();
        wg.done();
    });
    goro::go([&] {
        for (std::uint64_t v : ch) sum += v;
        wg.done();
    });
    wg.wait();
    if (sum != peer::sum_below(peer::buffered_n)) peer::fail("buffered", "sum", sum);
}

void run_mpmc() {
    goro::Channel<std::uint64_t> ch(peer::mpmc_cap);
    goro::WaitGroup producers, consumers;
    std::vector<std::uint64_t> sums(peer::mpmc_procs);
    const std::uint64_t per = peer::mpmc_n / peer::mpmc_procs;
    producers.add(peer::mpmc_procs);
    consumers.add(peer::mpmc_procs);
    for (int p = 0; p < peer::mpmc_procs; ++p) {
        goro::go([&, p] {
            for (std::uint64_t i = p * per; i < (p + 1) * per; ++i) ch.send(i);
            producers.done();
        });
    }
    for (int c = 0; c < peer::mpmc_procs; ++c) {
        goro::go([&, c] {
            std::uint64_t s = 0;
            for (std::uint64_t v : ch) s += v;
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

// run_idle() returns the peak RSS per parked goroutine, in bytes.
long run_idle() {
    goro::Channel<int> gate;
    auto park = [gate] {
        if (auto v = gate.recv()) peer::fail("idle", "received", *v);
    };
    auto release = [&gate] { gate.close(); };
    goro::WaitGroup started, finished;
    started.add(peer::idle_n);
    finished.add(peer::idle_n);
    long base = peer::status_kb("VmRSS");
    for (int i = 0; i < peer::idle_n; ++i) {
        goro::go([&] {
            started.done();
            park();
            finished.done();
        });
    }
    started.wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the last ones reach park()
    long peak = peer::status_kb("VmHWM");
    release();
    finished.wait();
    return (peak - base) * 1024 / peer::idle_n;
}

}  // namespace

int main(int argc, char** argv) {
    // Start the runtime before anything is timed or measured, as Go's is before main().
    goro::WaitGroup warm;
    warm.add(1);
    goro::go([&warm] { warm.done(); });
    warm.wait();

    peer::Workloads w{{{"spawn", run_spawn},
                       {"skynet", run_skynet},
                       {"pingpong", run_pingpong},
                       {"buffered", run_buffered},
                       {"mpmc", run_mpmc}},
                      run_idle};
    return peer::run(argc, argv, w);
}
