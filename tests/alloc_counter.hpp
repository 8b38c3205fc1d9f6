// tests/alloc_counter.hpp: counts every heap allocation of the program that includes it, by
// replacing the global operator new and delete. Include it in exactly one translation unit of
// a binary (replacement functions cannot be inline). Used to check that channels and select do
// not allocate per operation (Go's select2.go, -benchmem) and that cancelled contexts are freed.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace goro_test {

struct AllocTotals {
    long long count = 0;  // allocations so far
    long long bytes = 0;  // bytes requested so far
    long long live = 0;   // allocations not freed yet
};

namespace alloc_detail {

// Counts are sharded per thread, so that counting does not make allocations contend where the
// allocator itself would not (the benchmarks read them too).
struct alignas(64) Shard {
    std::atomic<long long> count{0}, bytes{0}, frees{0};
};
constexpr unsigned shards = 64;
inline Shard g_shards[shards];
inline std::atomic<unsigned> g_next{0};

inline Shard& shard() noexcept {
#if defined(__SANITIZE_THREAD__)
    // Goroutines are fibers to ThreadSanitizer, and fibers sharing a thread's thread_local
    // are unordered to it (a switch is no synchronisation, as in Go): one shard.
    return g_shards[0];
#else
    thread_local Shard* s = &g_shards[g_next.fetch_add(1, std::memory_order_relaxed) % shards];
    return *s;
#endif
}

inline void* allocate(std::size_t n, std::size_t align) {
    Shard& s = shard();
    s.count.fetch_add(1, std::memory_order_relaxed);
    s.bytes.fetch_add(static_cast<long long>(n), std::memory_order_relaxed);
    if (n == 0) n = 1;
    void* p = align <= alignof(std::max_align_t)
                  ? std::malloc(n)
                  : std::aligned_alloc(align, (n + align - 1) / align * align);
    if (!p) throw std::bad_alloc();
    return p;
}

inline void release(void* p) noexcept {
    if (!p) return;
    shard().frees.fetch_add(1, std::memory_order_relaxed);
    std::free(p);
}

template <class F>
void* nothrow(F f) noexcept {
    try {
        return f();
    } catch (...) {
        return nullptr;
    }
}

}  // namespace alloc_detail

// alloc_totals() sums the counters of every thread.
inline AllocTotals alloc_totals() noexcept {
    AllocTotals t;
    for (auto& s : alloc_detail::g_shards) {
        t.count += s.count.load(std::memory_order_relaxed);
        t.bytes += s.bytes.load(std::memory_order_relaxed);
        t.live -= s.frees.load(std::memory_order_relaxed);
    }
    t.live += t.count;
    return t;
}

}  // namespace goro_test

void* operator new(std::size_t n) {
    return goro_test::alloc_detail::allocate(n, alignof(std::max_align_t));
}
void* operator new[](std::size_t n) {
    return goro_test::alloc_detail::allocate(n, alignof(std::max_align_t));
}
void* operator new(std::size_t n, std::align_val_t a) {
    return goro_test::alloc_detail::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return goro_test::alloc_detail::allocate(n, static_cast<std::size_t>(a));
}
// The nothrow forms too: left alone, a sanitizer's would pair with the deletes below.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return goro_test::alloc_detail::nothrow([&] { return ::operator new(n); });
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return goro_test::alloc_detail::nothrow([&] { return ::operator new[](n); });
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return goro_test::alloc_detail::nothrow([&] { return ::operator new(n, a); });
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return goro_test::alloc_detail::nothrow([&] { return ::operator new[](n, a); });
}
void operator delete(void* p) noexcept { goro_test::alloc_detail::release(p); }
void operator delete[](void* p) noexcept { goro_test::alloc_detail::release(p); }
void operator delete(void* p, std::size_t) noexcept { goro_test::alloc_detail::release(p); }
void operator delete[](void* p, std::size_t) noexcept { goro_test::alloc_detail::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { goro_test::alloc_detail::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { goro_test::alloc_detail::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    goro_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    goro_test::alloc_detail::release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    goro_test::alloc_detail::release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    goro_test::alloc_detail::release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    goro_test::alloc_detail::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    goro_test::alloc_detail::release(p);
}
