// pushstage/core/thread_cache.hpp: the handles a thread keeps for the queues it uses without one,
// so that the tokenless API (Dispatcher::push(), pop() and the rest) costs what the handle API
// costs: the thread's own producer slot and moodycamel tokens, instead of a slot lease per push,
// moodycamel's implicit producer, a shared popped counter and moodycamel's tokenless dequeue (which
// scans every producer for the fullest).
//
// Threading: find() and find_or_make() act on the calling thread's cache only; retire() is called
//            by the owner (a queue) from its destructor, on any thread.
// Lifetime:  an owner and the caches holding one of its handles share a CacheOwner: the owner holds
//            a std::shared_ptr to it, and so does each cache entry, so a CacheOwner's address is
//            never reused while some cache may compare against it. The owner calls retire() first
//            thing in its destructor; from then on a cache only frees that handle's memory
//            (Release with owner_alive = false) when it next makes an entry. At thread exit the
//            cache releases each handle under CacheOwner::mu (Release with owner_alive = true if
//            the owner is alive: the handle's destructor gives its slots back), so the owner cannot
//            be destroyed meanwhile: (T1) retire sets alive = false under mu, (T2) thread exit
//            reads it under mu and runs the handle's destructor only if it is still true.
// Capacity:  one entry per live owner the thread used (no limit, no eviction: a handle holds
//            the thread's push order). Entries of destroyed owners are freed when the thread next
//            makes an entry, or at thread exit.
// Exit:      once the thread's cache has been destroyed at thread exit (by a thread_local
//            destructor that runs after it), find_or_make() returns nullptr and the caller takes
//            its path without a handle.
// Cost:      find() scans kHot pointers in a zero-initialised thread_local array (no TLS guard):
//            the thread's last kHot owners. find_or_make() (an owner not among them) is a hash
//            lookup; making an entry allocates.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>

namespace pushstage::detail {

// What a queue shares with the thread caches that hold one of its handles.
struct CacheOwner {
  std::mutex mu;
  // Written under mu (T1), read under mu before a handle's destructor runs (T2). Also read
  // without mu to find dead owners' entries: it never becomes true again, and a dead owner's
  // handle is only freed.
  std::atomic<bool> alive{true};
};

class ThreadCache {
 public:
  static constexpr std::size_t kHot = 8;
  using Make = void* (*)(void* context);
  // Destroys a handle and frees its memory. owner_alive = false: the owner has been destroyed;
  // free the memory without running the handle's destructor (it would touch the owner).
  using Release = void (*)(void* handle, bool owner_alive) noexcept;

  // The handle the calling thread keeps for `owner` if it is among its last kHot, else nullptr.
  [[nodiscard]] static void* find(const CacheOwner* owner) noexcept {
    for (const Key& k : hot_) {
      if (k.owner == owner) return k.handle;
    }
    return nullptr;
  }
  // The handle the calling thread keeps for `owner`, made with make(context) if it has none.
  // nullptr only at thread exit (see Exit). A throw from make (std::bad_alloc) propagates, with
  // the cache unchanged.
  static void* find_or_make(const std::shared_ptr<CacheOwner>& owner, Make make, void* context,
                            Release release);
  // (T1): the owner is being destroyed. Called once, first thing in its destructor.
  static void retire(CacheOwner& owner) noexcept;

 private:
  struct Key {  // no initialisers: a thread_local is zero-initialised, which is what we need
    const CacheOwner* owner;
    void* handle;
  };
  // The hot half of the cache: trivially constructed and destroyed, so that reading it costs a
  // TLS access and no initialisation check. The cold half (every entry, with its shared_ptr and
  // Release, and the thread-exit hook) is in thread_cache.cpp and keeps this in step.
  static inline thread_local Key hot_[kHot];
  friend class ThreadCacheKeeper;
};

}  // namespace pushstage::detail
