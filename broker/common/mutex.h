#ifndef BROKER_COMMON_MUTEX_H_
#define BROKER_COMMON_MUTEX_H_

// The project's mutex: std::mutex with Abseil's thread-safety annotations.
// Why not absl::Mutex: Debian's Abseil is not built with ThreadSanitizer, so TSan reports false
// races inside absl::Mutex. std::mutex is understood by TSan, and the annotations keep clang's
// -Wthread-safety analysis working on every piece of guarded state.

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace tlsbroker {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Scoped lock for Mutex.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

}  // namespace tlsbroker

#endif  // BROKER_COMMON_MUTEX_H_
