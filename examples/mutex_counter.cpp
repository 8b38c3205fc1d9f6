// mutex_counter: a counter shared by 1000 goroutines, under a Mutex and as an atomic, and a map
// under an RWMutex.
//
// The Go originals (the tutorials' race conditions and mutexes section):
//
//     var (
//         counter int
//         mutex   sync.Mutex
//     )
//     for i := 0; i < 1000; i++ {
//         wg.Add(1)
//         go func() {
//             defer wg.Done()
//             mutex.Lock()
//             counter++
//             mutex.Unlock()
//         }()
//     }
//     wg.Wait()
//     fmt.Printf("Final counter value: %d\n", counter)  // Always 1000
//
//     type SafeMap struct {
//         data map[string]int
//         mu   sync.RWMutex
//     }
//     func (sm *SafeMap) Set(key string, value int)  { sm.mu.Lock(); ...; sm.mu.Unlock() }
//     func (sm *SafeMap) Get(key string) (int, bool) { sm.mu.RLock(); ...; sm.mu.RUnlock() }
//     func (sm *SafeMap) GetAll() map[string]int     { sm.mu.RLock(); copy; sm.mu.RUnlock() }
//
// The unprotected counter++ of the tutorial is left out: in C++ a data race is undefined
// behaviour, not merely a wrong count. Exits 1 if a count is off.

#include <goro/goro.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>

namespace {

int counter = 0;
goro::Mutex mutex;

int fixed_with_mutex() {
    goro::WaitGroup wg;
    for (int i = 0; i < 1000; ++i) {
        wg.add(1);
        goro::go([&wg] {
            mutex.lock();
            ++counter;
            mutex.unlock();
            wg.done();
        });
    }
    wg.wait();
    std::printf("Final counter value: %d\n", counter);
    return counter;
}

std::atomic<long long> atomic_counter{0};

long long atomic_example() {
    goro::WaitGroup wg;
    for (int i = 0; i < 1000; ++i) {
        wg.add(1);
        goro::go([&wg] {
            atomic_counter.fetch_add(1);
            wg.done();
        });
    }
    wg.wait();
    std::printf("Atomic counter: %lld\n", atomic_counter.load());
    return atomic_counter.load();
}

class SafeMap {
public:
    void set(const std::string& key, int value) {
        std::lock_guard<goro::RWMutex> lock(mu_);  // write lock (exclusive)
        data_[key] = value;
    }
    std::optional<int> get(const std::string& key) const {
        std::shared_lock<goro::RWMutex> lock(mu_);  // read lock (shared)
        auto it = data_.find(key);
        if (it == data_.end()) return std::nullopt;
        return it->second;
    }
    std::map<std::string, int> get_all() const {
        std::shared_lock<goro::RWMutex> lock(mu_);
        return data_;  // a copy, so the caller never sees the map change under it
    }

private:
    std::map<std::string, int> data_;
    mutable goro::RWMutex mu_;
};

// Ten writers each set their own key 100 times (last value 99) while twenty readers poll.
bool safe_map_example() {
    SafeMap sm;
    goro::WaitGroup wg;
    std::atomic<int> reads{0}, torn{0};
    for (int w = 0; w < 10; ++w) {
        wg.add(1);
        goro::go([&sm, &wg, w] {
            for (int v = 0; v < 100; ++v) sm.set("key" + std::to_string(w), v);
            wg.done();
        });
    }
    for (int r = 0; r < 20; ++r) {
        wg.add(1);
        goro::go([&, r] {
            for (int i = 0; i < 100; ++i) {
                if (auto v = sm.get("key" + std::to_string((r + i) % 10)); v && (*v < 0 || *v > 99))
                    ++torn;
                ++reads;
                if (i % 10 == 0) goro::yield();
            }
            wg.done();
        });
    }
    wg.wait();

    bool ok = torn == 0;
    std::map<std::string, int> all = sm.get_all();
    for (auto& [key, value] : all) ok = ok && value == 99;
    ok = ok && all.size() == 10;
    std::printf("SafeMap: %zu keys, all at their last value 99: %s; %d concurrent reads\n",
                all.size(), ok ? "yes" : "NO", reads.load());
    return ok;
}

}  // namespace

int main() {
    bool ok = fixed_with_mutex() == 1000;
    ok = atomic_example() == 1000 && ok;
    ok = safe_map_example() && ok;
    std::printf("mutex_counter: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
