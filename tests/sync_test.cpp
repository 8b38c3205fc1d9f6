// tests/sync_test.cpp: WaitGroup, Mutex, RWMutex, Once and Cond (goro/sync.hpp).
//
// Catch2's assertion macros are not thread-safe, so goroutines only record what they see and
// the test thread asserts on it afterwards. Waits that a broken primitive could make endless
// are bounded with poll_until(), so that a bug fails the test instead of hanging it.
#include "run_util.hpp"
#include "test_util.hpp"

#include <goro/go.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using goro_test::poll_until;
using goro_test::scaled;

TEST_CASE("sync: Mutex counter with 1000 goroutines under std::lock_guard", "[sync][mutex]") {
    const int n = 1000, per = scaled(200, 10);
    goro::Mutex mu;
    long counter = 0;  // deliberately not atomic: the mutex is what makes it right
    int inside = 0, overlap = 0;
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&, i] {
            for (int k = 0; k < per; ++k) {
                std::lock_guard<goro::Mutex> lock(mu);
                if (++inside != 1) ++overlap;
                ++counter;
                if ((i + k) % 16 == 0) goro::yield();  // hold it across a switch now and then
                --inside;
            }
            wg.done();
        });
    wg.wait();
    CHECK(counter == static_cast<long>(n) * per);
    CHECK(overlap == 0);
}

TEST_CASE("sync: Mutex may be held across a park and unlocked by another goroutine",
          "[sync][mutex]") {
    goro::Mutex mu;
    goro::WaitGroup wg;
    std::atomic<int> order{0}, second_saw{-1};
    wg.add(2);
    mu.lock();  // locked by the test thread...
    goro::go([&] {
        goro::sleep_for(20ms);
        order = 1;
        mu.unlock();  // ...and unlocked by a goroutine, as Go allows
        wg.done();
    });
    goro::go([&] {
        mu.lock();
        second_saw = order.load();
        goro::sleep_for(1ms);  // parks while holding it
        mu.unlock();
        wg.done();
    });
    wg.wait();
    CHECK(second_saw.load() == 1);
    CHECK(mu.try_lock());
    mu.unlock();
}

TEST_CASE("sync: try_lock and try_lock_shared", "[sync][mutex][rwmutex]") {
    SECTION("Mutex") {
        goro::Mutex mu;
        CHECK(mu.try_lock());
        CHECK_FALSE(mu.try_lock());
        std::atomic<int> from_goroutine{-1};
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([&] {
            from_goroutine = mu.try_lock();
            wg.done();
        });
        wg.wait();
        CHECK(from_goroutine.load() == 0);
        mu.unlock();
        CHECK(mu.try_lock());
        mu.unlock();
        { std::unique_lock<goro::Mutex> lock(mu, std::try_to_lock); CHECK(lock.owns_lock()); }
        CHECK(mu.try_lock());
        mu.unlock();
    }
    SECTION("RWMutex: readers share, a writer excludes") {
        goro::RWMutex rw;
        CHECK(rw.try_lock_shared());
        CHECK(rw.try_lock_shared());
        CHECK_FALSE(rw.try_lock());
        rw.unlock_shared();
        CHECK_FALSE(rw.try_lock());
        rw.unlock_shared();
        CHECK(rw.try_lock());
        CHECK_FALSE(rw.try_lock());
        CHECK_FALSE(rw.try_lock_shared());
        rw.unlock();
        CHECK(rw.try_lock_shared());
        rw.unlock_shared();
        { std::shared_lock<goro::RWMutex> lock(rw, std::try_to_lock); CHECK(lock.owns_lock()); }
        CHECK(rw.try_lock());
        rw.unlock();
    }
    SECTION("RWMutex: a waiting writer keeps new readers out") {
        goro::RWMutex rw;
        rw.lock_shared();
        std::atomic<bool> writer_in{false};
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([&] {
            rw.lock();
            writer_in = true;
            rw.unlock();
            wg.done();
        });
        // Once the writer is queued, try_lock_shared() must fail although only readers hold it.
        bool blocked = poll_until([&] {
            if (!rw.try_lock_shared()) return true;
            rw.unlock_shared();
            return false;
        });
        CHECK(blocked);
        CHECK_FALSE(writer_in.load());
        rw.unlock_shared();
        wg.wait();
        CHECK(writer_in.load());
        CHECK(rw.try_lock_shared());
        rw.unlock_shared();
    }
}

TEST_CASE("sync: RWMutex-protected map with concurrent readers and writers", "[sync][rwmutex]") {
    goro::RWMutex rw;
    std::map<int, int> table;  // invariant under the lock: table[k] == 2 * k, and keys 0..n-1
    const int writers = 8, readers = 32, per = scaled(500, 20);
    std::atomic<int> bad_reads{0}, reads{0};
    goro::WaitGroup wg;
    wg.add(writers + readers);
    for (int w = 0; w < writers; ++w)
        goro::go([&, w] {
            for (int i = 0; i < per; ++i) {
                std::unique_lock<goro::RWMutex> lock(rw);
                int k = w * per + i;
                table[k] = 0;  // break the invariant, then restore it while still exclusive
                if (i % 8 == 0) goro::yield();
                table[k] = 2 * k;
            }
            wg.done();
        });
    for (int r = 0; r < readers; ++r)
        goro::go([&] {
            for (int i = 0; i < per; ++i) {
                std::shared_lock<goro::RWMutex> lock(rw);
                for (auto& [k, v] : table)
                    if (v != 2 * k) bad_reads.fetch_add(1);
                if (i % 8 == 0) goro::yield();
                reads.fetch_add(1);
            }
            wg.done();
        });
    wg.wait();
    CHECK(bad_reads.load() == 0);
    CHECK(reads.load() == readers * per);
    CHECK(table.size() == static_cast<std::size_t>(writers * per));
}

TEST_CASE("sync: RWMutex readers hold the lock together", "[sync][rwmutex]") {
    // Each reader waits, holding its read lock, until both are in: an exclusive lock would
    // leave the first waiting alone.
    goro::RWMutex rw;
    std::atomic<int> inside{0}, together{0};
    goro::WaitGroup wg;
    wg.add(2);
    for (int i = 0; i < 2; ++i)
        goro::go([&] {
            {
                std::shared_lock<goro::RWMutex> lock(rw);
                inside.fetch_add(1);
                if (poll_until([&] { return inside.load() == 2; }, 5000ms)) together.fetch_add(1);
            }  // unlock before done(): rw dies as soon as wait() returns
            wg.done();
        });
    wg.wait();
    CHECK(together.load() == 2);
}

TEST_CASE("sync: a writer is not starved by a stream of readers", "[sync][rwmutex]") {
    // Readers keep re-taking overlapping read locks, so the reader count would rarely reach
    // zero by itself; a pending writer must hold new readers back and get in.
    goro::RWMutex rw;
    std::atomic<bool> stop{false};
    std::atomic<int> readers_left{4};
    const auto budget = 5s;
    goro::WaitGroup wg;
    wg.add(5);
    for (int r = 0; r < 4; ++r)
        goro::go([&, r] {
            goro::sleep_for(std::chrono::microseconds(250 * r));  // stagger them
            auto end = goro::Clock::now() + budget;
            while (!stop.load() && goro::Clock::now() < end) {
                rw.lock_shared();
                goro::sleep_for(1ms);
                rw.unlock_shared();
            }
            readers_left.fetch_sub(1);
            wg.done();
        });
    std::atomic<int> acquired_while_reading{0};
    goro::go([&] {
        goro::sleep_for(5ms);  // let the readers get going
        for (int i = 0; i < 10; ++i) {
            rw.lock();
            if (readers_left.load() == 4) acquired_while_reading.fetch_add(1);
            rw.unlock();
            goro::sleep_for(500us);
        }
        stop = true;
        wg.done();
    });
    wg.wait();
    CHECK(acquired_while_reading.load() == 10);
}

TEST_CASE("sync: Mutex starvation mode: a waiter gets in against a tight re-locker",
          "[sync][mutex]") {
    // Go's TestMutexFairness: one goroutine holds the lock almost all the time, releasing it
    // only to take it straight back; the other must still acquire it ten times meanwhile.
    goro::Mutex mu;
    std::atomic<bool> stop{false}, hog_running{true};
    std::atomic<int> acquired_while_hogged{0};
    goro::WaitGroup wg;
    wg.add(2);
    goro::go([&] {
        auto end = goro::Clock::now() + (goro_test::sanitized() ? 5s : 1s);
        while (!stop.load() && goro::Clock::now() < end) {
            mu.lock();
            goro::sleep_for(100us);
            mu.unlock();
        }
        hog_running = false;
        wg.done();
    });
    goro::go([&] {
        for (int i = 0; i < 10; ++i) {
            goro::sleep_for(100us);
            mu.lock();
            if (hog_running.load()) acquired_while_hogged.fetch_add(1);
            mu.unlock();
        }
        stop = true;
        wg.done();
    });
    wg.wait();
    CHECK(acquired_while_hogged.load() == 10);
}

TEST_CASE("sync: Once under contention", "[sync][once]") {
    SECTION("the function runs exactly once; every caller returns after it completed") {
        goro::Once once;
        std::atomic<int> runs{0}, returned_early{0};
        std::atomic<bool> completed{false};
        goro::WaitGroup gate, wg;
        gate.add(1);
        wg.add(100);
        for (int i = 0; i < 100; ++i)
            goro::go([&] {
                gate.wait();
                once.call([&] {
                    runs.fetch_add(1);
                    goro::sleep_for(20ms);  // the others must wait, parked, meanwhile
                    completed = true;
                });
                if (!completed.load()) returned_early.fetch_add(1);
                wg.done();
            });
        gate.done();
        wg.wait();
        CHECK(runs.load() == 1);
        CHECK(returned_early.load() == 0);
        once.call([&] { runs.fetch_add(1); });
        CHECK(runs.load() == 1);
    }
    SECTION("a function that throws counts as done; its caller gets the exception") {
        goro::Once once;
        std::atomic<int> runs{0}, threw{0}, returned{0};
        goro::WaitGroup gate, wg;
        gate.add(1);
        wg.add(100);
        for (int i = 0; i < 100; ++i)
            goro::go([&] {
                gate.wait();
                try {
                    once.call([&] {
                        runs.fetch_add(1);
                        goro::sleep_for(5ms);
                        throw std::runtime_error("once");
                    });
                    returned.fetch_add(1);
                } catch (const std::runtime_error&) {
                    threw.fetch_add(1);
                }
                wg.done();
            });
        gate.done();
        wg.wait();
        CHECK(runs.load() == 1);
        CHECK(threw.load() == 1);
        CHECK(returned.load() == 99);
        bool ran_again = false;
        once.call([&] { ran_again = true; });
        CHECK_FALSE(ran_again);
    }
    SECTION("on a plain thread") {
        goro::Once once;
        int runs = 0;
        CHECK_THROWS_AS(once.call([&] {
            ++runs;
            throw std::logic_error("x");
        }),
                        std::logic_error);
        once.call([&] { ++runs; });
        CHECK(runs == 1);
    }
}

TEST_CASE("sync: Cond broadcast wakes every waiter", "[sync][cond]") {
    goro::Mutex mu;
    goro::Cond cond(mu);
    const int n = 50;
    int waiting = 0;  // guarded by mu
    bool ready = false;  // guarded by mu
    std::atomic<int> woken{0};
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i)
        goro::go([&] {
            {
                std::lock_guard<goro::Mutex> lock(mu);
                ++waiting;
                while (!ready) cond.wait();
                woken.fetch_add(1);
            }
            wg.done();
        });
    // A waiter counted under mu has its place in the cond's queue once mu is released.
    REQUIRE(poll_until([&] {
        std::lock_guard<goro::Mutex> lock(mu);
        return waiting == n;
    }));
    CHECK(woken.load() == 0);
    {
        std::lock_guard<goro::Mutex> lock(mu);
        ready = true;
    }
    cond.broadcast();
    CHECK(poll_until([&] { return woken.load() == n; }));
    if (woken.load() != n) cond.broadcast();  // a failed broadcast: do not leave them parked
    wg.wait();
}

TEST_CASE("sync: Cond signal wakes one waiter, the longest-waiting first", "[sync][cond]") {
    goro_test::Watchdog watchdog("Cond signal");  // a lost signal would hang wg.wait()
    goro::Mutex mu;
    goro::Cond cond(mu);
    const int n = 10;
    int waiting = 0;           // guarded by mu
    int tokens = 0;            // guarded by mu
    std::vector<int> order;    // guarded by mu
    std::atomic<int> wakeups{0};
    goro::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i) {
        goro::go([&, i] {
            {
                std::lock_guard<goro::Mutex> lock(mu);
                ++waiting;
                while (tokens == 0) {
                    cond.wait();
                    wakeups.fetch_add(1);
                }
                --tokens;
                order.push_back(i);
            }  // unlock before done(): mu dies as soon as wait() returns
            wg.done();
        });
        // Start the next one only once this one waits, so that the queue order is known.
        REQUIRE(poll_until([&] {
            std::lock_guard<goro::Mutex> lock(mu);
            return waiting == i + 1;
        }));
    }
    {
        std::lock_guard<goro::Mutex> lock(mu);
        tokens = 1;
    }
    cond.signal();
    CHECK(poll_until([&] { return wakeups.load() >= 1; }));
    goro::sleep_for(20ms);  // a wrong second wake-up would show here
    CHECK(wakeups.load() == 1);
    for (int i = 1; i < n; ++i) {
        {
            std::lock_guard<goro::Mutex> lock(mu);
            ++tokens;
        }
        cond.signal();
        CHECK(poll_until([&] { return wakeups.load() >= i + 1; }));
    }
    wg.wait();
    CHECK(wakeups.load() == n);
    std::vector<int> want(n);
    for (int i = 0; i < n; ++i) want[i] = i;
    std::lock_guard<goro::Mutex> lock(mu);
    CHECK(order == want);
}

TEST_CASE("sync: Cond signal and broadcast with nobody waiting are no-ops", "[sync][cond]") {
    goro::Mutex mu;
    goro::Cond cond(mu);
    cond.signal();
    cond.broadcast();
    // A later waiter is not woken by those earlier notifications.
    std::atomic<bool> woke{false};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
        {
            std::lock_guard<goro::Mutex> lock(mu);
            cond.wait();
            woke = true;
        }  // unlock before done(): mu dies as soon as wait() returns
        wg.done();
    });
    goro::sleep_for(20ms);
    CHECK_FALSE(woke.load());
    CHECK(poll_until([&] {
        cond.signal();
        return woke.load();
    }));
    wg.wait();
}

TEST_CASE("sync: WaitGroup", "[sync][waitgroup]") {
    SECTION("a negative counter throws std::logic_error and leaves the counter unchanged") {
        goro::WaitGroup wg;
        CHECK_THROWS_AS(wg.done(), std::logic_error);
        CHECK_THROWS_AS(wg.add(-1), std::logic_error);
        wg.add(1);
        CHECK_THROWS_AS(wg.add(-2), std::logic_error);
        try {
            wg.add(-5);
        } catch (const std::logic_error& e) {
            CHECK(std::string(e.what()).find("negative WaitGroup counter") != std::string::npos);
        }
        wg.done();
        wg.wait();  // the counter is 0 again, not stuck below or above it
        SUCCEED();
    }
    SECTION("wait with a zero counter returns at once") {
        goro::WaitGroup wg;
        wg.wait();
        wg.add(3);
        wg.add(-3);
        wg.wait();
        SUCCEED();
    }
    SECTION("many waiters, goroutines and threads, are all released; then it is reused") {
        goro::WaitGroup wg, waiters;
        const int gwaiters = 100, twaiters = 4;
        std::atomic<int> released{0};
        for (int round = 0; round < 3; ++round) {
            released = 0;
            wg.add(1);
            waiters.add(gwaiters + twaiters);
            for (int i = 0; i < gwaiters; ++i)
                goro::go([&] {
                    wg.wait();
                    released.fetch_add(1);
                    waiters.done();
                });
            std::vector<std::thread> ts;
            for (int i = 0; i < twaiters; ++i)
                ts.emplace_back([&] {
                    wg.wait();
                    released.fetch_add(1);
                    waiters.done();
                });
            goro::sleep_for(5ms);
            CHECK(released.load() == 0);
            wg.done();
            waiters.wait();
            for (auto& t : ts) t.join();
            CHECK(released.load() == gwaiters + twaiters);
        }
    }
}

TEST_CASE("sync: plain threads and goroutines share a Mutex and a WaitGroup",
          "[sync][threads]") {
    goro::Mutex mu;
    long counter = 0;  // guarded by mu
    const int threads = 4, goroutines = 100, per = scaled(2000, 50);
    goro::WaitGroup wg;
    wg.add(threads + goroutines);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int k = 0; k < per; ++k) {
                std::lock_guard<goro::Mutex> lock(mu);
                ++counter;
            }
            wg.done();
        });
    for (int g = 0; g < goroutines; ++g)
        goro::go([&] {
            for (int k = 0; k < per; ++k) {
                std::lock_guard<goro::Mutex> lock(mu);
                ++counter;
                if (k % 64 == 0) goro::yield();
            }
            wg.done();
        });
    wg.wait();
    for (auto& t : ts) t.join();
    CHECK(counter == static_cast<long>(threads + goroutines) * per);

    SECTION("a thread blocks on a Mutex that a sleeping goroutine holds") {
        std::atomic<bool> holding{false}, released_by_goroutine{false};
        goro::WaitGroup locked, finished;
        locked.add(1);
        finished.add(1);
        goro::go([&] {
            mu.lock();
            holding = true;
            locked.done();
            goro::sleep_for(30ms);
            released_by_goroutine = true;
            mu.unlock();
            finished.done();
        });
        locked.wait();
        bool saw = false;
        std::thread t([&] {
            mu.lock();
            saw = released_by_goroutine.load();
            mu.unlock();
        });
        t.join();
        finished.wait();
        CHECK(holding.load());
        CHECK(saw);
    }
    SECTION("a goroutine waits on a WaitGroup that a thread releases") {
        goro::WaitGroup gate, done;
        gate.add(1);
        done.add(1);
        std::atomic<bool> thread_done{false}, saw{false};
        goro::go([&] {
            gate.wait();
            saw = thread_done.load();
            done.done();
        });
        std::thread t([&] {
            std::this_thread::sleep_for(20ms);
            thread_done = true;
            gate.done();
        });
        done.wait();
        t.join();
        CHECK(saw.load());
    }
}
