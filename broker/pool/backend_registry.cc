#include "broker/pool/backend_registry.h"

#include "absl/strings/str_cat.h"

namespace tlsbroker {

absl::StatusOr<std::unique_ptr<BackendRegistry>> BackendRegistry::Create(
    const BrokerOptions& options, EventLoops* loops, MetricsObserver* metrics) {
  std::unique_ptr<BackendRegistry> registry(new BackendRegistry(
      std::make_shared<SocketBudget>(options.limits.max_backend_sockets, metrics)));
  MutexLock lock(&registry->mu_);
  for (const BackendOptions& backend : options.backends) {
    std::shared_ptr<BackendObserver> observer =
        metrics != nullptr ? metrics->ForBackend(backend.name) : nullptr;
    auto pool = SocketPool::Create(backend, loops, std::move(observer), registry->budget_);
    if (!pool.ok()) {
      return absl::Status(pool.status().code(),
                          absl::StrCat("backend ", backend.name, ": ", pool.status().message()));
    }
    registry->pools_.push_back(*pool);
    registry->by_name_[backend.name] = *pool;
  }
  registry->admin_callers_ = options.listen.admin_callers;
  return registry;
}

std::vector<std::string> BackendRegistry::AdminCallers() const {
  MutexLock lock(&mu_);
  return admin_callers_;
}

std::vector<std::string> BackendRegistry::Reload(const BrokerOptions& options, EventLoops* loops,
                                                 MetricsObserver* metrics) {
  std::vector<std::string> errors;
  // Step 1: check and build everything without touching what runs.
  std::vector<std::pair<std::shared_ptr<SocketPool>, std::shared_ptr<const TlsClientContext>>>
      reconfigure;
  std::vector<std::shared_ptr<SocketPool>> added;
  std::vector<const BackendOptions*> reconfigure_options;
  for (const BackendOptions& backend : options.backends) {
    std::shared_ptr<SocketPool> existing = Find(backend.name);
    if (existing != nullptr) {
      auto context = existing->PrepareReconfigure(backend);
      if (!context.ok()) {
        errors.emplace_back(context.status().message());
        continue;
      }
      reconfigure.emplace_back(existing, *std::move(context));
      reconfigure_options.push_back(&backend);
    } else {
      std::shared_ptr<BackendObserver> observer =
          metrics != nullptr ? metrics->ForBackend(backend.name) : nullptr;
      auto pool = SocketPool::Create(backend, loops, std::move(observer), budget_);
      if (!pool.ok()) {
        errors.push_back(absl::StrCat("backend ", backend.name, ": ", pool.status().message()));
        continue;
      }
      added.push_back(*std::move(pool));
    }
  }
  if (!errors.empty()) return errors;

  // Step 2: apply.
  MutexLock drain(&drain_mu_);
  budget_->SetLimit(options.limits.max_backend_sockets);
  for (size_t i = 0; i < reconfigure.size(); ++i) {
    reconfigure[i].first->ApplyReconfigure(*reconfigure_options[i], reconfigure[i].second);
  }
  std::vector<std::shared_ptr<SocketPool>> removed;
  std::vector<std::shared_ptr<SocketPool>> added_drained;
  {
    MutexLock lock(&mu_);
    std::vector<std::shared_ptr<SocketPool>> next;
    std::map<std::string, std::shared_ptr<SocketPool>, std::less<>> next_by_name;
    for (const BackendOptions& backend : options.backends) {
      auto it = by_name_.find(backend.name);
      std::shared_ptr<SocketPool> pool;
      if (it != by_name_.end()) {
        pool = it->second;
      } else {
        for (auto& a : added) {
          if (a->options()->name == backend.name) pool = a;
        }
      }
      next.push_back(pool);
      next_by_name[backend.name] = pool;
    }
    for (auto& [name, pool] : by_name_) {
      if (next_by_name.find(name) == next_by_name.end()) {
        removed.push_back(pool);
        drained_.erase(name);  // A backend added back later under this name starts serving.
      }
    }
    // A backend added while the broker is drained starts drained (never started: Resume
    // starts it).
    for (auto it = added.begin(); it != added.end();) {
      if (broker_drained_) {
        added_drained.push_back(*it);
        it = added.erase(it);
      } else {
        ++it;
      }
    }
    pools_ = std::move(next);
    by_name_ = std::move(next_by_name);
    admin_callers_ = options.listen.admin_callers;
  }
  for (auto& pool : removed) pool->Shutdown();  // Running leases finish; nothing new.
  for (auto& pool : added) pool->Start();
  for (auto& pool : added_drained) pool->Shutdown();
  return {};
}

std::shared_ptr<SocketPool> BackendRegistry::Find(absl::string_view name) const {
  MutexLock lock(&mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<SocketPool>> BackendRegistry::All() const {
  MutexLock lock(&mu_);
  return pools_;
}

void BackendRegistry::StartAll() {
  for (auto& pool : All()) pool->Start();
}

void BackendRegistry::ShutdownAll() {
  MutexLock drain(&drain_mu_);
  {
    MutexLock lock(&mu_);
    shut_down_ = true;
    broker_drained_ = true;
  }
  for (auto& pool : All()) pool->Shutdown();
}

bool BackendRegistry::LendsLocked(absl::string_view name) const {
  return !broker_drained_ && drained_.find(name) == drained_.end();
}

bool BackendRegistry::Drain(absl::string_view name) {
  MutexLock drain(&drain_mu_);
  std::shared_ptr<SocketPool> pool = Find(name);
  if (pool == nullptr) return false;
  {
    MutexLock lock(&mu_);
    drained_.emplace(name);
  }
  pool->Shutdown();
  return true;
}

absl::Status BackendRegistry::Resume(absl::string_view name) {
  MutexLock drain(&drain_mu_);
  std::shared_ptr<SocketPool> pool = Find(name);
  if (pool == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown backend \"", name, "\""));
  }
  bool lends;
  {
    MutexLock lock(&mu_);
    if (shut_down_) {
      return absl::FailedPreconditionError("the broker is shutting down; nothing can resume");
    }
    drained_.erase(std::string(name));
    lends = LendsLocked(name);
  }
  if (lends) {
    pool->Resume();
    pool->Start();  // A pool a reload added during a whole-broker drain never started.
  }
  return absl::OkStatus();
}

void BackendRegistry::DrainAll() {
  MutexLock drain(&drain_mu_);
  {
    MutexLock lock(&mu_);
    broker_drained_ = true;
  }
  for (auto& pool : All()) pool->Shutdown();
}

absl::StatusOr<std::vector<std::string>> BackendRegistry::ResumeAll() {
  MutexLock drain(&drain_mu_);
  std::vector<std::shared_ptr<SocketPool>> resume;
  std::vector<std::string> names;
  {
    MutexLock lock(&mu_);
    if (shut_down_) {
      return absl::FailedPreconditionError("the broker is shutting down; nothing can resume");
    }
    if (!broker_drained_) return names;
    broker_drained_ = false;
    for (const auto& pool : pools_) {
      const std::string name = pool->options()->name;
      if (!LendsLocked(name)) continue;
      resume.push_back(pool);
      names.push_back(name);
    }
  }
  for (auto& pool : resume) {
    pool->Resume();
    pool->Start();
  }
  return names;
}

bool BackendRegistry::IsDraining(absl::string_view name) const {
  MutexLock lock(&mu_);
  return !LendsLocked(name);
}

bool BackendRegistry::BrokerDraining() const {
  MutexLock lock(&mu_);
  return broker_drained_;
}

}  // namespace tlsbroker
