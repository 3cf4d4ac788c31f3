// medlab eval's library: reading and matching files, errors that name FILE:LINE, deterministic bootstrap
// intervals, the baseline band and HTML escaping.
#include "eval/evaluation.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "eval/caption_metrics.h"
#include "eval/html_report.h"

namespace medlab {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::filesystem::path write_file(const std::string& name, const std::string& text) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "medlab_evaluation_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << text;
  return dir / name;
}

PredictionRow prediction(std::string id, std::string answer, std::string image_id = "") {
  return {.id = std::move(id), .image_id = std::move(image_id), .answer = std::move(answer)};
}

ReferenceRow reference(std::string id, std::string text, std::string category = "") {
  ReferenceRow r{.id = std::move(id), .references = {std::move(text)}};
  r.fields = {{"id", r.id}, {"references", r.references}};
  if (!category.empty()) r.fields["category"] = category;
  return r;
}

// Expects `body` to throw Error with `part` in its message.
template <class F>
void expect_error(F body, const std::string& part) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one with: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// A dozen items over two categories; the "chest" answers repeat their reference word for word.
void sample(std::vector<PredictionRow>& predictions, std::vector<ReferenceRow>& references) {
  const char* findings[] = {"small left pleural effusion",      "mild cardiomegaly without edema",
                            "no acute cardiopulmonary process", "right lower lobe consolidation",
                            "stable appearance of the lungs",   "no pneumothorax is seen"};
  for (int i = 0; i < 6; ++i) {
    references.push_back(reference("chest" + std::to_string(i), findings[i], "chest"));
    predictions.push_back(prediction("chest" + std::to_string(i) + "#1", findings[i], "chest" + std::to_string(i)));
  }
  const char* other[] = {
      "there is a large effusion on the left", "the heart is enlarged with edema", "lungs are clear bilaterally",
      "possible pneumonia in the right base",  "no fracture is identified",        "a tube terminates in the stomach"};
  const char* answers[] = {"effusion on the left side",  "heart enlarged",    "clear lungs",
                           "pneumonia in the left base", "fracture of a rib", "the stomach is normal"};
  for (int i = 0; i < 6; ++i) {
    references.push_back(reference("abd" + std::to_string(i), other[i], "abdomen"));
    predictions.push_back(prediction("abd" + std::to_string(i), answers[i]));
  }
}

TEST(Evaluation, MatchesByIdThenByImageId) {
  const std::vector<ReferenceRow> refs = {reference("a", "x"), reference("b", "y"), reference("b#1", "z")};
  const std::vector<PredictionRow> preds = {prediction("a", "x"), prediction("b#1", "z", "b"),
                                            prediction("b#2", "y", "b"), prediction("c#1", "w", "c")};
  const Matching m = match_items(preds, refs, "");
  ASSERT_EQ(m.items.size(), 3u);
  EXPECT_EQ(m.items[1].references.front(), "z");  // its own id wins over its image_id
  EXPECT_EQ(m.items[2].references.front(), "y");
  EXPECT_EQ(m.unmatched_predictions, std::vector<std::string>{"c#1"});
  EXPECT_TRUE(m.unmatched_references.empty());  // "b" is used by b#2
}

TEST(Evaluation, MismatchedIdsAreListedNotDropped) {
  const std::vector<ReferenceRow> refs = {reference("a", "x"), reference("lonely", "y")};
  const std::vector<PredictionRow> preds = {prediction("a", "x"), prediction("stray", "z")};
  expect_error([&] { evaluate(preds, refs, {}); }, "1 prediction id(s) with no reference: stray");
  expect_error([&] { evaluate(preds, refs, {}); }, "1 reference id(s) with no prediction: lonely");
  const ordered_json report = evaluate(preds, refs, {.allow_missing = true});
  EXPECT_EQ(report["items"], 1);
  EXPECT_EQ(report["unmatched_predictions"], json::array({"stray"}));
  EXPECT_EQ(report["unmatched_references"], json::array({"lonely"}));
  expect_error([&] { evaluate({prediction("stray", "z")}, refs, {.allow_missing = true}); }, "nothing to score");
}

TEST(Evaluation, MalformedLinesAreNamedByFileAndLine) {
  const auto refs = write_file("refs.jsonl", "{\"id\": \"a\", \"reference\": \"x\"}\n\n{\"id\": \"b\", \"refer");
  expect_error([&] { read_references(refs); }, "refs.jsonl:3: not a JSON line");
  expect_error([&] { read_references(write_file("r2.jsonl", "[1, 2]\n")); },
               "r2.jsonl:1: expected a JSON object, found array");
  expect_error([&] { read_references(write_file("r3.jsonl", "{\"id\": \"a\"}\n")); }, "r3.jsonl:1: no \"references\"");
  expect_error([&] { read_references(write_file("r4.jsonl", "{\"id\": 7, \"reference\": \"x\"}\n")); },
               "r4.jsonl:1: \"id\" is not a string");
  expect_error([&] { read_references(write_file("r5.jsonl", "{\"id\": \"a\", \"references\": []}\n")); },
               "r5.jsonl:1: \"references\" is not a non-empty list");
  expect_error(
      [&] {
        read_references(
            write_file("r6.jsonl", "{\"id\":\"a\",\"reference\":\"x\"}\n{\"id\":\"a\",\"reference\":\"y\"}\n"));
      },
      "r6.jsonl:2: id \"a\" already on line 1");
  expect_error([&] { read_predictions(write_file("p1.jsonl", "{\"id\": \"a\", \"answer\": null}\n")); },
               "p1.jsonl:1: \"answer\" is null, not a string");
  expect_error([&] { read_predictions(write_file("p2.jsonl", "{\"id\": \"a\"}\n")); }, "p2.jsonl:1: no \"answer\"");
  const auto ok =
      read_references(write_file("r7.jsonl", "{\"id\":\"a\",\"references\":[\"x\",\"y\"],\"category\":\"c\"}\r\n"));
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].references.size(), 2u);
  EXPECT_EQ(ok[0].line, 1);
}

TEST(Evaluation, EmptyFilesFail) {
  expect_error([&] { read_references(write_file("empty.jsonl", "")); }, "empty.jsonl: empty");
  expect_error([&] { read_predictions(write_file("blank.jsonl", "\n  \n")); }, "blank.jsonl: empty");
  expect_error([&] { read_predictions("/nonexistent/medlab/preds.jsonl"); }, "cannot be read");
}

TEST(Evaluation, ErrorRowsScoreAsEmptyAnswersAndAreReported) {
  const auto preds =
      read_predictions(write_file("errors.jsonl",
                                  "{\"id\":\"a\",\"answer\":\"small left pleural effusion\",\"error\":null}\n"
                                  "{\"id\":\"b\",\"answer\":null,\"error\":\"image.png: cannot be read\"}\n"));
  const std::vector<ReferenceRow> refs = {reference("a", "small left pleural effusion"), reference("b", "no effusion")};
  const ordered_json report = evaluate(preds, refs, {});
  ASSERT_EQ(report["errored"].size(), 1u);
  EXPECT_EQ(report["errored"][0]["id"], "b");
  EXPECT_EQ(report["per_item"][1]["BLEU-4"], 0.0);
  EXPECT_EQ(report["per_item"][1]["error"], "image.png: cannot be read");
  EXPECT_EQ(report["per_item"][0]["BLEU-4"], 100.0);  // four words, all matching: every precision 1
  EXPECT_EQ(report["per_item"][0]["ROUGE-L"], 100.0);
}

TEST(Evaluation, GroupsAndScoresArePercentWithTwoDecimals) {
  std::vector<PredictionRow> preds;
  std::vector<ReferenceRow> refs;
  sample(preds, refs);
  const ordered_json report = evaluate(preds, refs, {.group_by = "category"});
  ASSERT_EQ(report["groups"].size(), 2u);
  EXPECT_EQ(report["groups"][0]["name"], "abdomen");  // groups in name order
  EXPECT_EQ(report["groups"][1]["name"], "chest");
  EXPECT_EQ(report["groups"][1]["metrics"]["ROUGE-L"]["value"], 100.0);
  EXPECT_EQ(report["groups"][1]["metrics"]["Finding micro F1"]["value"], 100.0);
  EXPECT_LT(report["groups"][0]["metrics"]["ROUGE-L"]["value"].get<double>(), 100.0);
  for (const auto& [name, metric] : report["metrics"].items()) {
    if (!metric["value"].is_number()) continue;
    const double v = metric["value"].get<double>();
    EXPECT_DOUBLE_EQ(v, std::round(v * 100) / 100) << name;
    EXPECT_GE(v, 0) << name;
  }
  const double chest = report["groups"][1]["metrics"]["CIDEr-D"]["value"],
               abdomen = report["groups"][0]["metrics"]["CIDEr-D"]["value"];
  EXPECT_NEAR(report["metrics"]["CIDEr-D"]["value"].get<double>(), (chest + abdomen) / 2, 0.01);  // equal group sizes
}

// Resamples pool per-item BLEU counts instead of calling bleu(); on the whole set and on each group the
// two must agree (random captions: several references, length ties, empty answers).
TEST(Evaluation, PooledBleuCountsAgreeWithCaptionMetrics) {
  const char* vocabulary[] = {"no", "small", "left", "right", "pleural", "effusion", "lungs", "clear", "mild", "edema"};
  std::mt19937_64 rng(3);
  auto text = [&](size_t words) {
    std::string t;
    for (size_t w = 0; w < words; ++w) t += std::string(w ? " " : "") + vocabulary[rng() % 10];
    return t;
  };
  std::vector<PredictionRow> preds;
  std::vector<ReferenceRow> refs;
  std::map<std::string, std::vector<CaptionItem>> groups;
  std::vector<CaptionItem> all;
  for (int i = 0; i < 60; ++i) {
    const std::string id = "i" + std::to_string(i), group = i % 3 ? "a" : "b";
    preds.push_back(prediction(id, text(rng() % 9)));
    refs.push_back(reference(id, text(1 + rng() % 8), group));
    for (size_t extra = rng() % 3; extra > 0; --extra) refs.back().references.push_back(text(1 + rng() % 8));
    CaptionItem item{.candidate = caption_tokens(preds.back().answer)};
    for (const std::string& r : refs.back().references) item.references.push_back(caption_tokens(r));
    all.push_back(item);
    groups[group].push_back(item);
  }
  const ordered_json report = evaluate(preds, refs, {.group_by = "category"});
  for (size_t n = 0; n < 4; ++n) {
    const std::string name = "BLEU-" + std::to_string(n + 1);
    EXPECT_NEAR(report["metrics"][name]["value"].get<double>(), 100 * bleu(all).corpus[n], 0.005 + 1e-9) << name;
    for (const auto& g : report["groups"])
      EXPECT_NEAR(g["metrics"][name]["value"].get<double>(), 100 * bleu(groups[g["name"].get<std::string>()]).corpus[n],
                  0.005 + 1e-9)
          << name << " " << g["name"];
  }
  EXPECT_GT(report["metrics"]["BLEU-1"]["value"].get<double>(), 1);  // the draws do overlap
}

TEST(Evaluation, BootstrapIsDeterministicAndItsIntervalHoldsThePointEstimate) {
  std::vector<PredictionRow> preds;
  std::vector<ReferenceRow> refs;
  sample(preds, refs);
  const EvalOptions options{.group_by = "category", .bootstrap = 300, .bootstrap_seed = 7};
  const std::string first = evaluate(preds, refs, options).dump(), again = evaluate(preds, refs, options).dump();
  EXPECT_EQ(first, again);
  EvalOptions other_seed = options;
  other_seed.bootstrap_seed = 8;
  EXPECT_NE(first, evaluate(preds, refs, other_seed).dump());
  const ordered_json report = ordered_json::parse(first);
  for (const char* name : {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "Finding micro F1"}) {
    const auto& m = report["metrics"][name];
    ASSERT_TRUE(m["ci"].is_array()) << name;
    EXPECT_LE(m["ci"][0].get<double>(), m["value"].get<double>()) << name;
    EXPECT_GE(m["ci"][1].get<double>(), m["value"].get<double>()) << name;
    EXPECT_LT(m["ci"][0].get<double>(), m["ci"][1].get<double>()) << name;  // the items differ, so the draws do
  }
  // All chest answers are perfect: every resample of that group scores 100 on ROUGE-L.
  EXPECT_EQ(report["groups"][1]["metrics"]["ROUGE-L"]["ci"], json::array({100.0, 100.0}));
}

TEST(Evaluation, BaselineBandGivesPassAndFail) {
  std::vector<PredictionRow> preds;
  std::vector<ReferenceRow> refs;
  sample(preds, refs);
  ordered_json report = evaluate(preds, refs, {});
  const double rouge = report["metrics"]["ROUGE-L"]["value"];
  const json inside = {{"metrics", {{"ROUGE-L", {{"value", rouge + 0.5}, {"tolerance", 0.5}}}}}};
  EXPECT_TRUE(check_baseline(report, inside, "b.json"));
  EXPECT_EQ(report["baseline"]["result"], "PASS");
  EXPECT_EQ(report["baseline"]["metrics"]["ROUGE-L"]["difference"], -0.5);
  const json outside = {{"metrics",
                         {{"ROUGE-L", {{"value", rouge + 0.51}, {"tolerance", 0.5}}},
                          {"BLEU-1", {{"value", report["metrics"]["BLEU-1"]["value"]}, {"tolerance", 0}}}}}};
  EXPECT_FALSE(check_baseline(report, outside, "b.json"));
  EXPECT_EQ(report["baseline"]["result"], "FAIL");
  EXPECT_EQ(report["baseline"]["metrics"]["ROUGE-L"]["result"], "FAIL");
  EXPECT_EQ(report["baseline"]["metrics"]["BLEU-1"]["result"], "PASS");
  expect_error(
      [&] {
        check_baseline(report, {{"metrics", {{"BLEU-5", {{"value", 1}, {"tolerance", 1}}}}}}, "b.json");
      },
      "b.json: metric \"BLEU-5\" is not one medlab eval reports");
  expect_error(
      [&] {
        check_baseline(report, {{"metrics", {{"BLEU-4", {{"value", 1}}}}}}, "b.json");
      },
      "needs a numeric");
  expect_error([&] { check_baseline(report, json::array(), "b.json"); }, "b.json: expected");
}

TEST(Evaluation, WrittenBaselineTakesTheIntervalHalfWidthOrTheFlag) {
  std::vector<PredictionRow> preds;
  std::vector<ReferenceRow> refs;
  sample(preds, refs);
  expect_error([&] { make_baseline(evaluate(preds, refs, {}), std::nullopt); }, "needs --bootstrap");
  ordered_json report = evaluate(preds, refs, {.bootstrap = 100});
  const ordered_json baseline = make_baseline(report, std::nullopt);
  const auto& ci = report["metrics"]["BLEU-4"]["ci"];
  EXPECT_NEAR(baseline["metrics"]["BLEU-4"]["tolerance"].get<double>(), (ci[1].get<double>() - ci[0].get<double>()) / 2,
              0.005 + 1e-9);
  EXPECT_EQ(make_baseline(report, 1.5)["metrics"]["ROUGE-L"]["tolerance"], 1.5);
  EXPECT_TRUE(check_baseline(report, json::parse(baseline.dump()), "written"));  // a report passes its own baseline
}

TEST(Evaluation, RunManifestIsCopiedAndDisagreementsNamed) {
  std::vector<PredictionRow> preds = {prediction("a", "x"), prediction("b", "y"), prediction("c", "z")};
  preds[0].run = {{"model_sha256", "abc"}, {"seed", 1}};
  preds[1].run = {{"model_sha256", "abc"}, {"seed", 2}};
  const ordered_json report = evaluate(preds, {reference("a", "x"), reference("b", "y"), reference("c", "z")}, {});
  EXPECT_EQ(report["run"]["model_sha256"], "abc");
  ASSERT_EQ(report["run_disagreements"].size(), 1u);
  EXPECT_EQ(report["run_disagreements"][0]["field"], "seed");
  EXPECT_EQ(report["run_disagreements"][0]["values"], json::array({1, 2}));
  EXPECT_EQ(report["rows_without_run"], 1);
}

TEST(HtmlReport, EscapesEveryInputText) {
  const std::string attack = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">";
  std::vector<PredictionRow> preds = {prediction("<b>id</b>", attack), prediction("two", "fine words here")};
  preds[0].run = {{"engine", "medlab <i>x</i>"}};
  std::vector<ReferenceRow> refs = {reference("<b>id</b>", "a & b", "<svg onload=alert(3)>"),
                                    reference("two", "fine words here", "plain")};
  ordered_json report = evaluate(preds, refs, {.group_by = "category", .bootstrap = 20});
  const std::string html = html_report(report, "2026-01-01T00:00:00Z");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_EQ(html.find("<svg onload"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"),
            std::string::npos);
  EXPECT_NE(html.find("a &amp; b"), std::string::npos);
  EXPECT_NE(html.find("Research software, not for diagnosis"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // self-contained: nothing to fetch
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("<rect class=\"bar\""), std::string::npos);
  EXPECT_EQ(html_escape("'\"&<>"), "&#39;&quot;&amp;&lt;&gt;");
}

}  // namespace
}  // namespace medlab
