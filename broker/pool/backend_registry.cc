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
  budget_->SetLimit(options.limits.max_backend_sockets);
  for (size_t i = 0; i < reconfigure.size(); ++i) {
    reconfigure[i].first->ApplyReconfigure(*reconfigure_options[i], reconfigure[i].second);
  }
  std::vector<std::shared_ptr<SocketPool>> removed;
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
      if (next_by_name.find(name) == next_by_name.end()) removed.push_back(pool);
    }
    pools_ = std::move(next);
    by_name_ = std::move(next_by_name);
    admin_callers_ = options.listen.admin_callers;
  }
  for (auto& pool : removed) pool->Shutdown();  // Running leases finish; nothing new.
  for (auto& pool : added) pool->Start();
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
  for (auto& pool : All()) pool->Shutdown();
  MutexLock lock(&mu_);
  for (auto& [name, pool] : by_name_) draining_[name] = true;
}

bool BackendRegistry::Drain(absl::string_view name) {
  std::shared_ptr<SocketPool> pool = Find(name);
  if (pool == nullptr) return false;
  pool->Shutdown();
  MutexLock lock(&mu_);
  draining_[std::string(name)] = true;
  return true;
}

bool BackendRegistry::IsDraining(absl::string_view name) const {
  MutexLock lock(&mu_);
  auto it = draining_.find(name);
  return it != draining_.end() && it->second;
}

}  // namespace tlsbroker
