// The batch run's bookkeeping: --shard parsing, questions files, the work list from a folder or a
// manifest (order, ids, errors), sharding, the crash-safe results file, and merging shard outputs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "repro/batch_work.h"
#include "repro/merge.h"
#include "repro/results_file.h"

namespace medlab {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Each test writes under a folder of this process's own (CTest runs test processes side by side).
class BatchFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(MEDLAB_BINARY_DIR) / "test-tmp" /
           ("batch_work_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& relative, const std::string& text) const {
    const fs::path path = dir_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string read(const fs::path& path) const {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  fs::path dir_;
};

// The message of the Error `run` throws, or "(no error)".
std::string error_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ParseShard, ReadsIndexAndCount) {
  const Shard first = parse_shard("0/1");
  EXPECT_EQ(first.index, 0u);
  EXPECT_EQ(first.count, 1u);
  const Shard last = parse_shard("7/8");
  EXPECT_EQ(last.index, 7u);
  EXPECT_EQ(last.count, 8u);
  EXPECT_EQ(parse_shard("2/3").text(), "2/3");
}

TEST(ParseShard, RejectsWhatIsNotIOfN) {
  for (const char* text : {"3/3", "4/3", "a/b", "1/0", "", "1/2/3", "/3", "1/", "-1/3", " 1/3", "1", "0x1/3"}) {
    const std::string error = error_of([&] { parse_shard(text); });
    EXPECT_TRUE(contains(error, "--shard " + std::string(text) + ": expected I/N")) << "'" << text << "': " << error;
  }
}

TEST_F(BatchFiles, QuestionsSkipBlankAndCommentLinesAndCarriageReturns) {
  const fs::path path = write("questions.txt", "# asked of every image\r\nIs there a nodule?\r\n\r\n  \t\nDescribe it.\n#\nAny effusion?");
  EXPECT_EQ(read_questions(path), (std::vector<std::string>{"Is there a nodule?", "Describe it.", "Any effusion?"}));
}

TEST_F(BatchFiles, QuestionsFileWithoutQuestionsIsAnError) {
  const fs::path empty = write("empty.txt", "");
  EXPECT_TRUE(contains(error_of([&] { read_questions(empty); }), "empty.txt: no questions"));
  const fs::path comments = write("comments.txt", "# one\n\n# two\r\n");
  EXPECT_TRUE(contains(error_of([&] { read_questions(comments); }), "comments.txt: no questions"));
  EXPECT_TRUE(contains(error_of([&] { read_questions(dir_ / "absent.txt"); }), "absent.txt: cannot open"));
}

TEST_F(BatchFiles, FolderListsImagesInByteOrderOfTheirPaths) {
  const fs::path images = dir_ / "images";
  for (const char* file : {"b.png", "B.png", "a/z.dcm", "a/y.JPG", "a-b.jpeg", "c.dicom", "scan0001", "sub/deep/e.png",
                           ".hidden.png", ".cache/x.png", "sub/.thumbs/t.jpg", "notes.txt", "sub/report.pdf"})
    write(fs::path("images") / file, "x");
  size_t skipped = 99;
  const std::vector<WorkItem> work = work_from_folder(images, {"Q1?", "Q2?"}, skipped);
  EXPECT_EQ(skipped, 2u);  // notes.txt and report.pdf; hidden files are not counted
  size_t skipped_again = 0;
  const std::vector<WorkItem> slash = work_from_folder(images.string() + "/", {"Q1?", "Q2?"}, skipped_again);
  ASSERT_EQ(slash.size(), work.size());
  for (size_t i = 0; i < work.size(); ++i) EXPECT_EQ(slash[i].id, work[i].id);

  // Bytes, not path components: '-' (0x2d) sorts before '/' (0x2f), and capitals before small letters.
  const std::vector<std::string> files = {"B.png", "a-b.jpeg", "a/y.JPG", "a/z.dcm", "b.png", "c.dicom", "scan0001",
                                          "sub/deep/e.png"};
  ASSERT_EQ(work.size(), 2 * files.size());
  for (size_t i = 0; i < work.size(); ++i) {
    const std::string& file = files[i / 2];
    const std::string question = i % 2 == 0 ? "Q1?" : "Q2?";
    EXPECT_EQ(work[i].index, i);
    EXPECT_EQ(work[i].image_id, file);
    EXPECT_EQ(work[i].id, file + "#" + std::to_string(i % 2 + 1));
    EXPECT_EQ(work[i].file, (images / file).string());
    EXPECT_EQ(work[i].question, question);
    EXPECT_TRUE(work[i].window.empty());
    EXPECT_TRUE(work[i].error.empty());
  }
}

TEST_F(BatchFiles, FolderNeedsQuestionsAndAFolder) {
  write("images/a.png", "x");
  size_t skipped = 0;
  EXPECT_TRUE(contains(error_of([&] { work_from_folder(dir_ / "images", {}, skipped); }), "--question"));
  EXPECT_TRUE(contains(error_of([&] { work_from_folder(dir_ / "images/a.png", {"Q?"}, skipped); }), "a.png: not a folder"));
}

TEST_F(BatchFiles, JsonLinesManifest) {
  const fs::path manifest = write("study/cases.jsonl",
                                  "{\"file\": \"img/a.png\", \"question\": \"Own question?\"}\n"
                                  "{\"file\": \"/data/b.dcm\", \"id\": \"case-2\", \"prompt\": \"Prompt field?\", \"window\": \"lung\"}\r\n"
                                  "this is not JSON\n"
                                  "\n"
                                  "{\"id\": \"text-only\", \"question\": \"What is a pneumothorax?\"}\n"
                                  "{\"file\": 5}\n"
                                  "{\"question\": \"No file, no id\"}\n"
                                  "[1, 2]\n"
                                  "{\"file\": \"c.png\"}\n");
  const std::vector<WorkItem> work = work_from_manifest(manifest, {});
  ASSERT_EQ(work.size(), 8u);
  for (size_t i = 0; i < work.size(); ++i) EXPECT_EQ(work[i].index, i);

  EXPECT_EQ(work[0].id, "img/a.png#1");
  EXPECT_EQ(work[0].image_id, "img/a.png");
  EXPECT_EQ(work[0].file, (dir_ / "study" / "img/a.png").string());  // relative to the manifest's folder
  EXPECT_EQ(work[0].question, "Own question?");
  EXPECT_EQ(work[0].error, "");

  EXPECT_EQ(work[1].id, "case-2#1");
  EXPECT_EQ(work[1].file, "/data/b.dcm");
  EXPECT_EQ(work[1].question, "Prompt field?");
  EXPECT_EQ(work[1].window, "lung");

  EXPECT_EQ(work[2].id, "line-3#1");
  EXPECT_TRUE(work[2].error.starts_with("cases.jsonl:3: ")) << work[2].error;

  EXPECT_EQ(work[3].id, "text-only#1");
  EXPECT_EQ(work[3].file, "");
  EXPECT_EQ(work[3].question, "What is a pneumothorax?");
  EXPECT_EQ(work[3].error, "");

  EXPECT_EQ(work[4].id, "line-6#1");
  EXPECT_TRUE(contains(work[4].error, "cases.jsonl:6: field \"file\" must be a string")) << work[4].error;
  EXPECT_TRUE(work[5].error.starts_with("cases.jsonl:7: a row needs a \"file\"")) << work[5].error;
  EXPECT_TRUE(contains(work[6].error, "cases.jsonl:8: not a JSON object")) << work[6].error;

  // No question anywhere: the pair is kept, as an error row.
  EXPECT_EQ(work[7].id, "c.png#1");
  EXPECT_TRUE(work[7].error.starts_with("no question")) << work[7].error;
}

TEST_F(BatchFiles, ManifestRowsTakeTheRunsQuestionsWhenGiven) {
  const fs::path manifest = write("cases.jsonl", "{\"file\": \"a.png\", \"question\": \"ignored\"}\nnot JSON\n{\"id\": \"t\"}\n");
  const std::vector<WorkItem> work = work_from_manifest(manifest, {"Q1?", "Q2?"});
  ASSERT_EQ(work.size(), 5u);  // an erroneous line is one pair, not one per question
  const std::vector<std::string> ids = {"a.png#1", "a.png#2", "line-2#1", "t#1", "t#2"};
  for (size_t i = 0; i < work.size(); ++i) {
    EXPECT_EQ(work[i].index, i);
    EXPECT_EQ(work[i].id, ids[i]);
  }
  EXPECT_EQ(work[1].question, "Q2?");
  EXPECT_EQ(work[3].question, "Q1?");
  EXPECT_FALSE(work[2].error.empty());
}

TEST_F(BatchFiles, ManifestIdsMustBeUnique) {
  const fs::path manifest = write("cases.jsonl", "{\"file\": \"a.png\"}\n\n{\"file\": \"b.png\", \"id\": \"a.png\"}\n");
  const std::string error = error_of([&] { work_from_manifest(manifest, {"Q?"}); });
  EXPECT_TRUE(contains(error, "cases.jsonl:3: id \"a.png\" was already used on line 1")) << error;
}

TEST_F(BatchFiles, EmptyOrUnknownManifestIsAnError) {
  const fs::path empty = write("empty.jsonl", "\n  \r\n");
  EXPECT_TRUE(contains(error_of([&] { work_from_manifest(empty, {"Q?"}); }), "empty.jsonl: the manifest lists no images"));
  const fs::path header_only = write("header.csv", "file,question\n");
  EXPECT_TRUE(contains(error_of([&] { work_from_manifest(header_only, {"Q?"}); }), "header.csv: the manifest lists no images"));
  const fs::path text = write("cases.txt", "a.png\n");
  EXPECT_TRUE(contains(error_of([&] { work_from_manifest(text, {"Q?"}); }), "cases.txt: a manifest is .jsonl"));
  EXPECT_TRUE(contains(error_of([&] { work_from_manifest(dir_ / "absent.jsonl", {"Q?"}); }), "absent.jsonl: cannot open"));
}

TEST_F(BatchFiles, CsvManifest) {
  const fs::path manifest = write("cases.csv",
                                  "id,file,question,window\r\n"
                                  "case-1,img/a.png,\"Is there a nodule, or a mass?\",lung\r\n"
                                  "case-2,/data/b.png,\"She said \"\"no\"\" twice\",\r\n"
                                  "case-3,c.png\r\n"
                                  "\r\n"
                                  "case-4,,\"Text only, no image?\",\r\n"
                                  ",,orphan,\r\n"
                                  "case-5,\"d.png,x,\r\n"
                                  ",e.png,Plain,\r\n");
  const std::vector<WorkItem> work = work_from_manifest(manifest, {});
  ASSERT_EQ(work.size(), 7u);
  EXPECT_EQ(work[0].id, "case-1#1");
  EXPECT_EQ(work[0].file, (dir_ / "img/a.png").string());
  EXPECT_EQ(work[0].question, "Is there a nodule, or a mass?");
  EXPECT_EQ(work[0].window, "lung");
  EXPECT_EQ(work[1].question, "She said \"no\" twice");
  EXPECT_EQ(work[1].file, "/data/b.png");
  EXPECT_EQ(work[1].window, "");
  EXPECT_EQ(work[2].id, "line-4#1");
  EXPECT_TRUE(contains(work[2].error, "cases.csv:4: expected 4 comma-separated fields")) << work[2].error;
  EXPECT_EQ(work[3].id, "case-4#1");
  EXPECT_EQ(work[3].file, "");
  EXPECT_EQ(work[3].question, "Text only, no image?");
  EXPECT_TRUE(contains(work[4].error, "cases.csv:7: a row needs a file")) << work[4].error;
  EXPECT_TRUE(contains(work[5].error, "cases.csv:8: expected 4")) << work[5].error;  // unclosed quote
  EXPECT_EQ(work[6].id, "e.png#1");  // id defaults to the file as written
  EXPECT_EQ(work[6].question, "Plain");
  for (size_t i = 0; i < work.size(); ++i) EXPECT_EQ(work[i].index, i);
}

TEST_F(BatchFiles, CsvPromptColumnAndHeaderWithoutFileOrId) {
  const fs::path prompts = write("prompts.csv", "file,prompt\na.png,Describe\n");
  const std::vector<WorkItem> work = work_from_manifest(prompts, {});
  ASSERT_EQ(work.size(), 1u);
  EXPECT_EQ(work[0].question, "Describe");
  const fs::path bad = write("bad.csv", "path,question\na.png,Describe\n");
  const std::string error = error_of([&] { work_from_manifest(bad, {}); });
  EXPECT_TRUE(contains(error, "bad.csv:1: the header names neither a \"file\" nor an \"id\" column")) << error;
}

TEST_F(BatchFiles, ManifestByteOrderMarkIsIgnored) {
  const fs::path csv = write("excel.csv", "\xEF\xBB\xBFid,file,question\r\ncase-1,a.png,Describe\r\n");
  const std::vector<WorkItem> from_csv = work_from_manifest(csv, {});
  ASSERT_EQ(from_csv.size(), 1u);
  EXPECT_EQ(from_csv[0].id, "case-1#1");  // the id column is found, not taken for an unknown one
  const fs::path jsonl = write("bom.jsonl", "\xEF\xBB\xBF{\"file\": \"a.png\", \"question\": \"Q?\"}\n");
  const std::vector<WorkItem> from_jsonl = work_from_manifest(jsonl, {});
  ASSERT_EQ(from_jsonl.size(), 1u);
  EXPECT_EQ(from_jsonl[0].error, "");
}

TEST(ShardWork, ShardsPartitionTheRunByIndex) {
  std::vector<WorkItem> all;
  for (size_t i = 0; i < 10; ++i) all.push_back({i, "img" + std::to_string(i) + ".png#1"});
  std::multiset<size_t> seen;
  for (size_t s = 0; s < 3; ++s) {
    const std::vector<WorkItem> mine = shard_work(all, {s, 3});
    EXPECT_EQ(mine.size(), s == 0 ? 4u : 3u);
    for (size_t k = 0; k < mine.size(); ++k) {
      EXPECT_EQ(mine[k].index % 3, s);
      if (k > 0) {
        EXPECT_LT(mine[k - 1].index, mine[k].index);  // the run's order is kept
      }
      EXPECT_EQ(mine[k].id, all[mine[k].index].id);
      seen.insert(mine[k].index);
    }
  }
  ASSERT_EQ(seen.size(), all.size());  // every pair once: together the shards are the run, with no overlap
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(seen.count(i), 1u);
  EXPECT_EQ(shard_work(all, {0, 1}).size(), all.size());
  EXPECT_TRUE(shard_work(all, {11, 12}).empty());
}

TEST_F(BatchFiles, ResultsRoundTrip) {
  const fs::path path = dir_ / "out.jsonl";
  const std::vector<json> rows = {{{"id", "a.png#1"}, {"index", 0}, {"answer", "Line one\nline two, \"quoted\", é"}},
                                  {{"id", "a.png#2"}, {"index", 1}, {"answer", nullptr}, {"error", "cannot read"}},
                                  {{"id", "b.png#1"}, {"index", 2}, {"tokens", {1, 2, 3}}}};
  {
    ResultsFile file(path, false);
    for (const json& row : rows) file.append(row);
  }
  const std::string text = read(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);  // one line per row, newlines in answers escaped
  const ResultRows read_back = read_result_rows(path);
  EXPECT_FALSE(read_back.torn_tail);
  EXPECT_EQ(read_back.rows, rows);

  {  // appending again continues the file
    ResultsFile file(path, true);
    file.append({{"id", "bad-utf8"}, {"answer", "\xff\xfe"}});  // replaced, never a failed row
  }
  const ResultRows more = read_result_rows(path);
  ASSERT_EQ(more.rows.size(), 4u);
  EXPECT_EQ(more.rows[3]["answer"], "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(BatchFiles, TornLastLineIsLeftOutAndCutBeforeTheNextAppend) {
  const std::string whole = "{\"id\": \"a#1\", \"index\": 0}\n{\"id\": \"a#2\", \"index\": 1}\n";
  const fs::path path = write("out.jsonl", whole + "{\"id\": \"b#1\", \"ans");
  const ResultRows torn = read_result_rows(path);
  EXPECT_TRUE(torn.torn_tail);
  ASSERT_EQ(torn.rows.size(), 2u);
  EXPECT_EQ(torn.rows[1]["id"], "a#2");

  {
    ResultsFile file(path, true);
    EXPECT_EQ(read(path), whole);
    file.append({{"id", "b#1"}, {"index", 2}});
  }
  const ResultRows resumed = read_result_rows(path);
  EXPECT_FALSE(resumed.torn_tail);
  ASSERT_EQ(resumed.rows.size(), 3u);
  EXPECT_EQ(resumed.rows[2]["id"], "b#1");
}

TEST_F(BatchFiles, FileOfOnlyATornRowIsEmptied) {
  const fs::path path = write("out.jsonl", "{\"id\": \"a");
  const ResultRows torn = read_result_rows(path);
  EXPECT_TRUE(torn.torn_tail);
  EXPECT_TRUE(torn.rows.empty());
  ResultsFile file(path, true);
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST_F(BatchFiles, MalformedRowBeforeTheLastIsAnError) {
  const fs::path path = write("out.jsonl", "{\"id\": \"a#1\"}\n\n{\"id\": \"a#2\"\n{\"id\": \"b#1\"}\n");
  std::string error = error_of([&] { read_result_rows(path); });
  EXPECT_TRUE(contains(error, "out.jsonl:3: not a result row")) << error;
  const fs::path no_id = write("no_id.jsonl", "{\"id\": \"a#1\"}\n{\"answer\": \"x\"}\n");
  error = error_of([&] { read_result_rows(no_id); });
  EXPECT_TRUE(contains(error, "no_id.jsonl:2: not a result row")) << error;
  EXPECT_TRUE(contains(error_of([&] { read_result_rows(dir_ / "absent.jsonl"); }), "absent.jsonl: cannot open"));
}

// A row as medlab batch writes it, with the fields merge reads.
json result_row(size_t index, size_t pairs, const std::string& answer = "", uint64_t seed = 7,
                const std::string& model = std::string(64, 'a')) {
  return {{"index", index},
          {"pairs", pairs},
          {"id", "img" + std::to_string(index) + ".png#1"},
          {"answer", answer.empty() ? "answer " + std::to_string(index) : answer},
          {"tokens", {index, 1}},
          {"error", nullptr},
          {"seed", seed},
          {"model_sha256", model},
          {"run",
           {{"commit", "abc123"},
            {"isa", "avx2"},
            {"precision", "fast"},
            {"seed", seed},
            {"model_sha256", model},
            {"sampler", {{"temperature", 0.0}, {"top_k", 64}}},
            {"max_new_tokens", 128},
            {"stop", json::array()}}}};
}

class MergeFiles : public BatchFiles {
 protected:
  // Shard s of 3 of a 9-pair run, less the indices in `left_out`.
  fs::path shard_file(size_t s, const std::set<size_t>& left_out = {}) const {
    const fs::path path = dir_ / ("shard" + std::to_string(s) + ".jsonl");
    ResultsFile file(path, false);
    for (size_t index = s; index < 9; index += 3)
      if (!left_out.count(index)) file.append(result_row(index, 9));
    return path;
  }
  fs::path rows_file(const std::string& name, const std::vector<json>& rows) const {
    const fs::path path = dir_ / name;
    ResultsFile file(path, false);
    for (const json& row : rows) file.append(row);
    return path;
  }
};

TEST_F(MergeFiles, ShardsJoinInPairOrder) {
  const MergedResults merged = merge_results({shard_file(2), shard_file(0), shard_file(1)});
  EXPECT_EQ(merged.pairs_total, 9u);
  ASSERT_EQ(merged.rows.size(), 9u);
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(merged.rows[i], result_row(i, 9));
  EXPECT_TRUE(merged.missing.empty());
  EXPECT_TRUE(merged.duplicates.empty());
  EXPECT_TRUE(merged.conflicts.empty());
  EXPECT_TRUE(merged.notes.empty());
}

TEST_F(MergeFiles, MissingPairsAreListed) {
  const MergedResults merged = merge_results({shard_file(0), shard_file(1, {4}), shard_file(2, {2, 8})});
  EXPECT_EQ(merged.missing, (std::vector<size_t>{2, 4, 8}));
  ASSERT_EQ(merged.rows.size(), 6u);
  EXPECT_EQ(merged.rows[2]["index"], 3);
}

TEST_F(MergeFiles, TheSameRowTwiceIsADuplicateKeptOnce) {
  const fs::path again = rows_file("again.jsonl", {result_row(5, 9)});
  const MergedResults merged = merge_results({shard_file(0), shard_file(1), shard_file(2), again});
  ASSERT_EQ(merged.duplicates.size(), 1u);
  EXPECT_TRUE(contains(merged.duplicates[0], "img5.png#1")) << merged.duplicates[0];
  EXPECT_TRUE(contains(merged.duplicates[0], "shard2.jsonl:2")) << merged.duplicates[0];
  EXPECT_TRUE(contains(merged.duplicates[0], "again.jsonl:1")) << merged.duplicates[0];
  EXPECT_TRUE(merged.conflicts.empty());
  EXPECT_EQ(merged.rows.size(), 9u);
}

TEST_F(MergeFiles, DifferentAnswersForOnePairAreAConflict) {
  const fs::path other = rows_file("other.jsonl", {result_row(5, 9, "a different answer")});
  const MergedResults merged = merge_results({shard_file(0), shard_file(1), shard_file(2), other});
  ASSERT_EQ(merged.conflicts.size(), 1u);
  EXPECT_TRUE(contains(merged.conflicts[0], "other.jsonl:1")) << merged.conflicts[0];
  EXPECT_TRUE(merged.duplicates.empty());
  ASSERT_EQ(merged.rows.size(), 9u);
  EXPECT_EQ(merged.rows[5]["answer"], "answer 5");  // the first is kept
}

TEST_F(MergeFiles, RowsOfAnotherRunAreAnError) {
  const fs::path shard0 = shard_file(0);
  const fs::path seed = rows_file("seed.jsonl", {result_row(1, 9, "", 8)});
  std::string error = error_of([&] { merge_results({shard0, seed}); });
  EXPECT_TRUE(contains(error, "seed.jsonl:1: made with other settings")) << error;
  EXPECT_TRUE(contains(error, "not one run")) << error;

  const fs::path model = rows_file("model.jsonl", {result_row(1, 9, "", 7, std::string(64, 'b'))});
  error = error_of([&] { merge_results({shard0, model}); });
  EXPECT_TRUE(contains(error, "model.jsonl:1: made with other settings")) << error;

  json longer = result_row(1, 10);
  const fs::path pairs = rows_file("pairs.jsonl", {longer});
  error = error_of([&] { merge_results({shard0, pairs}); });
  EXPECT_TRUE(contains(error, "pairs.jsonl:1: the run had 10 pairs")) << error;

  const fs::path beyond = rows_file("beyond.jsonl", {result_row(9, 9)});
  EXPECT_TRUE(contains(error_of([&] { merge_results({beyond}); }), "beyond.jsonl:1: index 9 is beyond"));

  json no_index = result_row(1, 9);
  no_index.erase("index");
  const fs::path bare = rows_file("bare.jsonl", {no_index});
  EXPECT_TRUE(contains(error_of([&] { merge_results({bare}); }), "bare.jsonl:1: the row has no \"index\""));
  EXPECT_TRUE(contains(error_of([&] { merge_results({}); }), "no results files"));
  const fs::path empty = rows_file("empty.jsonl", {});
  EXPECT_TRUE(contains(error_of([&] { merge_results({empty, empty}); }), "the 2 files hold no rows"));
}

TEST_F(MergeFiles, TornTailIsANote) {
  const fs::path shard1 = shard_file(1);
  std::ofstream(shard1, std::ios::binary | std::ios::app) << "{\"index\": 7, \"pai";
  const MergedResults merged = merge_results({shard_file(0), shard1, shard_file(2)});
  ASSERT_EQ(merged.notes.size(), 1u);
  EXPECT_TRUE(contains(merged.notes[0], "shard1.jsonl: its last row is incomplete")) << merged.notes[0];
  EXPECT_EQ(merged.rows.size(), 9u);
  EXPECT_TRUE(merged.missing.empty());
}

TEST_F(MergeFiles, AnotherEngineBuildIsANoteNamingBoth) {
  json other = result_row(1, 9);
  other["run"]["commit"] = "000aaa";  // sorts before the first file's "abc123"
  const fs::path later = rows_file("later.jsonl", {other});
  const MergedResults merged = merge_results({shard_file(0), later});
  ASSERT_EQ(merged.notes.size(), 1u);
  EXPECT_TRUE(contains(merged.notes[0], "later.jsonl:1: engine commit 000aaa, ISA avx2 differs from engine commit abc123"))
      << merged.notes[0];
  EXPECT_TRUE(contains(merged.notes[0], "shard0.jsonl:1)")) << merged.notes[0];
}

}  // namespace
}  // namespace medlab
