// medlab merge: the results files of a sharded batch run joined into one, in the run's pair order.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "repro/merge.h"
#include "repro/results_file.h"

namespace medlab::cli {
namespace {

struct MergeCommand {
  std::vector<std::string> inputs;
  std::string out;
  bool allow_missing = false;
};

void list(const char* what, const std::vector<std::string>& items) {
  for (size_t i = 0; i < items.size() && i < 20; ++i) std::fprintf(stderr, "medlab merge: %s: %s\n", what, items[i].c_str());
  if (items.size() > 20) std::fprintf(stderr, "medlab merge: ... and %zu more %s\n", items.size() - 20, what);
}

void merge(const MergeCommand& o) {
  if (std::filesystem::exists(o.out)) fail(o.out, ": already exists; merge writes a new file");
  const std::vector<std::filesystem::path> inputs(o.inputs.begin(), o.inputs.end());
  const MergedResults merged = merge_results(inputs);
  for (const std::string& note : merged.notes) std::fprintf(stderr, "medlab merge: note: %s\n", note.c_str());
  list("duplicate (same answer, kept once)", merged.duplicates);
  list("conflict (different answers, the first kept)", merged.conflicts);
  std::vector<std::string> missing;
  for (size_t index : merged.missing) missing.push_back("pair " + std::to_string(index) + " of " + std::to_string(merged.pairs_total));
  list("missing", missing);
  if (!merged.conflicts.empty()) fail("merge: ", merged.conflicts.size(), " pairs have different answers in different files; nothing written");
  if (!merged.missing.empty() && !o.allow_missing)
    fail("merge: ", merged.missing.size(), " of ", merged.pairs_total, " pairs have no row (a shard not run or not finished? "
         "resume it with medlab batch --resume); nothing written. --allow-missing writes what there is");
  ResultsFile out(o.out, false);
  for (const nlohmann::json& row : merged.rows) out.append(row);
  std::fprintf(stderr, "medlab merge: %zu of %zu pairs from %zu files, %zu duplicates dropped, %zu missing; rows in %s\n",
               merged.rows.size(), merged.pairs_total, inputs.size(), merged.duplicates.size(), merged.missing.size(),
               o.out.c_str());
}

}  // namespace

void register_merge(CLI::App& app) {
  auto o = std::make_shared<MergeCommand>();
  CLI::App* cmd = app.add_subcommand("merge", "Join the results files of medlab batch --shard runs into one, in pair order; "
                                              "reports pairs missing or answered twice");
  cmd->add_option("inputs", o->inputs, "Results files (JSON Lines from medlab batch)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", o->out, "The merged results file (must not exist)")->required();
  cmd->add_flag("--allow-missing", o->allow_missing, "Write the merged file even when pairs are missing (still listed)");
  cmd->callback([o] { merge(*o); });
}

}  // namespace medlab::cli
