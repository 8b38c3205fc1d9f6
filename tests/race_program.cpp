// Programs for the race detector test (tests/race_test.sh), built and run only in the
// ThreadSanitizer build. The racy ones must be reported, as `go run -race` reports them; the
// others synchronise through goro and must not be.
//
//   parallel  two goroutines increment a plain int, in parallel on two workers
//   turns     the same on one worker, taking turns through yield(): no synchronisation in Go's
//             model (a switch is none), so a race, though they never overlap in time
//   channel   the same increments, handed back and forth through channels: no race
//   mutex     the same under a goro::Mutex, on two workers: no race
//   waitgroup writes before WaitGroup::done, read after wait: no race
#include <goro/goro.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace {

int counter = 0;  // racy on purpose, or not, by mode

int parallel() {
    goro::set_gomaxprocs(2);
    // Start both loops together, so they overlap in time; relaxed, so that the start itself
    // orders nothing between them.
    static std::atomic<int> ready{0};
    goro::WaitGroup wg;
    wg.add(2);
    for (int g = 0; g < 2; ++g)
        goro::go([&wg] {
            ready.fetch_add(1, std::memory_order_relaxed);
            while (ready.load(std::memory_order_relaxed) < 2) {
            }
            for (int i = 0; i < 100000; ++i) ++counter;
            wg.done();
        });
    wg.wait();
    return 0;
}

int turns() {
    goro::set_gomaxprocs(1);
    // Both goroutines are alive at once (relaxed: no ordering between them): a goroutine that
    // starts after the other has finished reuses its stack, and TSan's fiber comes with the
    // stack, so to TSan they would be one thread.
    static std::atomic<int> arrived{0};
    goro::WaitGroup wg;
    wg.add(2);
    for (int g = 0; g < 2; ++g)
        goro::go([&wg] {
            arrived.fetch_add(1, std::memory_order_relaxed);
            while (arrived.load(std::memory_order_relaxed) < 2) goro::yield();
            for (int i = 0; i < 100; ++i) {
                ++counter;
                goro::yield();
            }
            wg.done();
        });
    wg.wait();
    return 0;
}

int channel() {
    goro::set_gomaxprocs(2);
    goro::Channel<int> ping, pong;
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
        for (int i = 0; i < 1000; ++i) {
            ++counter;
            ping.send(i);
            pong.recv();
        }
        wg.done();
    });
    goro::go([&] {
        for (int i = 0; i < 1000; ++i) {
            ping.recv();
            ++counter;
            pong.send(i);
        }
        wg.done();
    });
    wg.wait();
    return counter == 2000 ? 0 : 1;
}

int mutex() {
    goro::set_gomaxprocs(2);
    goro::Mutex mu;
    goro::WaitGroup wg;
    wg.add(4);
    for (int g = 0; g < 4; ++g)
        goro::go([&] {
            for (int i = 0; i < 1000; ++i) {
                std::lock_guard<goro::Mutex> lock(mu);
                ++counter;
            }
            wg.done();
        });
    wg.wait();
    return counter == 4000 ? 0 : 1;
}

int waitgroup() {
    goro::set_gomaxprocs(2);
    int slots[8] = {};
    goro::WaitGroup wg;
    wg.add(8);
    for (int g = 0; g < 8; ++g)
        goro::go([&, g] {
            slots[g] = g + 1;
            wg.done();
        });
    wg.wait();
    int sum = 0;
    for (int v : slots) sum += v;
    return sum == 36 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    struct Mode {
        const char* name;
        int (*run)();
    };
    const Mode modes[] = {{"parallel", parallel}, {"turns", turns},       {"channel", channel},
                          {"mutex", mutex},       {"waitgroup", waitgroup}};
    for (const Mode& m : modes)
        if (argc == 2 && std::strcmp(argv[1], m.name) == 0) {
            int rc = m.run();
            std::printf("%s: counter=%d\n", m.name, counter);
            return rc;
        }
    std::fprintf(stderr, "usage: %s parallel|turns|channel|mutex|waitgroup\n", argv[0]);
    return 2;
}
