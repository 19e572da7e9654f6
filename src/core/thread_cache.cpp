// thread_cache.cpp: the cold half of core/thread_cache.hpp: every entry of a thread's cache, what
// it keeps alive, and releasing the handles at thread exit.
#include "pushstage/core/thread_cache.hpp"

#include <atomic>
#include <unordered_map>
#include <utility>

namespace pushstage::detail {

// One per thread that made an entry: owns every handle of its thread's cache.
class ThreadCacheKeeper {
 public:
  ThreadCacheKeeper() = default;
  ThreadCacheKeeper(const ThreadCacheKeeper&) = delete;
  ThreadCacheKeeper& operator=(const ThreadCacheKeeper&) = delete;
  // Thread exit: gives each live owner's handle back (T2); frees the rest.
  ~ThreadCacheKeeper() {
    exiting_ = true;  // a later tokenless call on this thread goes without a handle
    for (ThreadCache::Key& k : ThreadCache::hot_) k = ThreadCache::Key{nullptr, nullptr};
    for (auto& [key, e] : entries_) release(e);
  }

  void* find_or_make(const std::shared_ptr<CacheOwner>& owner, ThreadCache::Make make,
                     void* context, ThreadCache::Release rel) {
    void* handle = nullptr;
    if (auto it = entries_.find(owner.get()); it != entries_.end()) {
      handle = it->second.handle;
    } else {
      sweep();
      handle = make(context);  // may throw: nothing changed
      try {
        entries_.emplace(owner.get(), Entry{owner, handle, rel});
      } catch (...) {
        rel(handle, true);  // the owner is alive: it is calling us
        throw;
      }
    }
    ThreadCache::hot_[next_hot_] = ThreadCache::Key{owner.get(), handle};
    next_hot_ = (next_hot_ + 1) % ThreadCache::kHot;
    return handle;
  }
  static bool exiting() noexcept { return exiting_; }

 private:
  struct Entry {
    std::shared_ptr<CacheOwner> owner;
    void* handle = nullptr;
    ThreadCache::Release release = nullptr;
  };

  // Frees the entries of owners destroyed since (their handles' memory only), and their hot keys
  // first: once an entry's shared_ptr goes, its CacheOwner's address may be reused.
  void sweep() noexcept {
    for (auto it = entries_.begin(); it != entries_.end();) {
      // acquire: pairs with retire()'s release; nothing of the owner is read after it, so this
      // only keeps the reasoning local.
      if (it->second.owner->alive.load(std::memory_order_acquire)) {
        ++it;
        continue;
      }
      for (ThreadCache::Key& k : ThreadCache::hot_) {
        if (k.owner == it->first) k = ThreadCache::Key{nullptr, nullptr};
      }
      release(it->second);
      it = entries_.erase(it);
    }
  }
  static void release(Entry& e) noexcept {
    const std::lock_guard lock(e.owner->mu);  // T2: pairs with T1
    // relaxed: mu orders it (T1 writes it under mu too).
    e.release(e.handle, e.owner->alive.load(std::memory_order_relaxed));
  }

  std::unordered_map<const CacheOwner*, Entry> entries_;
  std::size_t next_hot_ = 0;
  static inline thread_local bool exiting_ = false;
};

void* ThreadCache::find_or_make(const std::shared_ptr<CacheOwner>& owner, Make make, void* context,
                                Release release) {
  if (ThreadCacheKeeper::exiting()) return nullptr;  // the keeper would be built again
  thread_local ThreadCacheKeeper keeper;
  return keeper.find_or_make(owner, make, context, release);
}

void ThreadCache::retire(CacheOwner& owner) noexcept {
  const std::lock_guard lock(owner.mu);  // T1: pairs with T2
  // release: a sweep that reads false without mu frees only the handle's memory.
  owner.alive.store(false, std::memory_order_release);
}

}  // namespace pushstage::detail
