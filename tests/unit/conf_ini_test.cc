// conf/ini: the ConfigParser clone (reference §1).
#include <gtest/gtest.h>

#include "conf/ini.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

ini::Parser parse(const std::string& text) {
  return ini::Parser::parse(text, "/cfg/t.ini", {{"here", "/cfg", 0}, {"__file__", "/cfg/t.ini", 0}});
}

// Expects parse(text) to throw; returns the error.
py::Error parse_error(const std::string& text) {
  try {
    parse(text);
  } catch (const py::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return py::Error("", 0, "", "");
}

py::Error get_error(const ini::Parser& p, const std::string& section, const std::string& key) {
  try {
    p.get(section, key);
  } catch (const py::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << section << "/" << key;
  return py::Error("", 0, "", "");
}

TEST(ConfIni, SectionsOptionsAndLines) {
  auto p = parse("# comment\n[app:main]\nuse = egg:Paste#static\n/v2: app\nhttp://h/p = app\n\n[ server:x ]\nk=v\n");
  ASSERT_EQ(p.sections().size(), 2u);
  const auto& s = p.sections()[0];
  EXPECT_EQ(s.name, "app:main");
  EXPECT_EQ(s.line, 2);
  ASSERT_EQ(s.options.size(), 3u);
  EXPECT_EQ(s.options[0].key, "use");
  EXPECT_EQ(s.options[0].line, 3);
  EXPECT_EQ(s.options[1].key, "/v2");  // first ':' or '=' splits
  EXPECT_EQ(s.options[1].raw, "app");
  EXPECT_EQ(s.options[2].key, "http");
  EXPECT_EQ(s.options[2].raw, "//h/p = app");
  EXPECT_EQ(p.sections()[1].name, " server:x ");  // header text is not stripped
  EXPECT_EQ(p.loc("app:main", "/v2").str(), "/cfg/t.ini:4");
}

TEST(ConfIni, HeaderIsGreedyAndTrailingTextIgnored) {
  auto p = parse("[a]x] trailing\nk = v\n[default]\nk = w\n");
  EXPECT_EQ(p.sections()[0].name, "a]x");
  EXPECT_EQ(p.sections()[1].name, "default");  // only DEFAULT is special
}

TEST(ConfIni, NoInlineCommentsAndContinuations) {
  auto p = parse(
      "[s]\n"
      "a = b ; c\n"
      "d = e # f\n"
      "multi = one\n"
      "    two\n"
      "  # indented comment is skipped\n"
      "\n"
      "    three\n"
      "\n"
      "\n"
      "k = v\n"
      "  x = y\n"
      "empty =\n");
  EXPECT_EQ(p.get("s", "a"), "b ; c");
  EXPECT_EQ(p.get("s", "d"), "e # f");
  EXPECT_EQ(p.get("s", "multi"), "one\ntwo\n\nthree");
  EXPECT_EQ(p.get("s", "k"), "v\nx = y");  // an indented k = v continues the value
  EXPECT_EQ(p.get("s", "empty"), "");
  EXPECT_EQ(p.section("s")->options.size(), 5u);
}

TEST(ConfIni, DuplicateSectionAndOption) {
  auto e = parse_error("[a]\nk = 1\n[b]\n[a]\n");
  EXPECT_EQ(e.type(), "DuplicateSectionError");
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.text(), "While reading from '/cfg/t.ini' [line  4]: section 'a' already exists");
  e = parse_error("[a]\nk = 1\nother = 2\nk: 3\n");
  EXPECT_EQ(e.type(), "DuplicateOptionError");
  EXPECT_EQ(e.text(), "While reading from '/cfg/t.ini' [line  4]: option 'k' in section 'a' already exists");
  EXPECT_EQ(std::string(e.what()), "/cfg/t.ini:4: DuplicateOptionError: " + e.text());
  e = parse_error("[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n");
  EXPECT_EQ(e.type(), "DuplicateOptionError");
}

TEST(ConfIni, MissingHeaderBomAndParsingError) {
  auto e = parse_error("k = v\n[a]\n");
  EXPECT_EQ(e.type(), "MissingSectionHeaderError");
  EXPECT_EQ(e.text(), "File contains no section headers.\nfile: '/cfg/t.ini', line: 1\n'k = v\\n'");
  e = parse_error("\xef\xbb\xbf[a]\nk = v\n");
  EXPECT_EQ(e.type(), "MissingSectionHeaderError");
  EXPECT_EQ(e.text(), "File contains no section headers.\nfile: '/cfg/t.ini', line: 1\n'\\ufeff[a]\\n'");
  e = parse_error("[a]\nno delimiter\nk = v\nalso bad\n");
  EXPECT_EQ(e.type(), "ParsingError");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.text(),
            "Source contains parsing errors: '/cfg/t.ini'\n\t[line  2]: 'no delimiter\\n'\n\t[line  4]: 'also bad\\n'");
}

TEST(ConfIni, InterpolationChainsAndEscapes) {
  auto p = parse(
      "[DEFAULT]\nroot = %(here)s/data\nlogs = %(root)s/logs\npct = 100%%\n"
      "[s]\nroot = /override\nfile = %(logs)s/x.log\nown = %(root)s\n");
  EXPECT_EQ(p.get("DEFAULT", "logs"), "/cfg/data/logs");
  // A section value overriding a DEFAULT key is what %(key)s sees in that section.
  EXPECT_EQ(p.get("s", "file"), "/override/logs/x.log");
  EXPECT_EQ(p.get("s", "own"), "/override");
  EXPECT_EQ(p.get("s", "pct"), "100%");
}

TEST(ConfIni, InterpolationErrors) {
  auto p = parse("[s]\nmissing = %(nope)s\nbare = 100%\nbad = %(x\ncycle = %(cycle)s\n");
  auto e = get_error(p, "s", "missing");
  EXPECT_EQ(e.type(), "InterpolationMissingOptionError");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.text(),
            "Error in file /cfg/t.ini: Bad value substitution: option 'missing' in section 's' contains an "
            "interpolation key 'nope' which is not a valid option name. Raw value: '%(nope)s'");
  e = get_error(p, "s", "bare");
  EXPECT_EQ(e.type(), "InterpolationSyntaxError");
  EXPECT_EQ(e.text(), "Error in file /cfg/t.ini: '%' must be followed by '%' or '(', found: '%'");
  e = get_error(p, "s", "bad");
  EXPECT_EQ(e.text(), "Error in file /cfg/t.ini: bad interpolation variable reference '%(x'");
  e = get_error(p, "s", "cycle");
  EXPECT_EQ(e.type(), "InterpolationDepthError");
}

TEST(ConfIni, DefaultsOrRawQuirkAndHereOverride) {
  auto p = parse("[DEFAULT]\nempty =\nx = %(empty)s\nhere = /elsewhere\n[s]\nk = v\n");
  py::Dict d = p.defaults();
  EXPECT_EQ(d.find("x")->value, "%(empty)s");  // '' or raw -> raw
  EXPECT_EQ(d.find("here")->value, "/elsewhere");
  EXPECT_EQ(d.keys().front(), "here");  // keeps the constructor's position
  auto opts = p.options("s");
  EXPECT_EQ(opts.front(), "k");
  EXPECT_EQ(opts.size(), 5u);  // k + here, __file__, empty, x
}

TEST(ConfIni, UpdateDefaultsOnlyFillsMissing) {
  auto p = parse("[DEFAULT]\nport = 8080\n[s]\nlisten = %(port)s %(extra)s\n");
  py::Dict vars;
  vars.set("port", "9000");
  vars.set("extra", "x");
  p.update_defaults(vars, false);
  EXPECT_EQ(p.get("s", "listen"), "8080 x");
}

TEST(ConfIni, ReadFileSetsHereAndFileAndReportsMissingFile) {
  testing::TempDir dir;
  std::string f = dir.write("sub/a.ini", "[s]\nk = %(here)s|%(__file__)s\n");
  auto p = ini::Parser::read_file(f);
  EXPECT_EQ(p.get("s", "k"), dir.path() + "/sub|" + f);
  try {
    ini::Parser::read_file(dir.path() + "/nope.ini");
    FAIL();
  } catch (const py::Error& e) {
    EXPECT_EQ(e.py_str(), "FileNotFoundError: [Errno 2] No such file or directory: '" + dir.path() + "/nope.ini'");
  }
}

TEST(ConfIni, ReprMatchesPython) {
  EXPECT_EQ(py::repr("a'b"), "\"a'b\"");
  EXPECT_EQ(py::repr("a'b\""), "'a\\'b\"'");
  EXPECT_EQ(py::repr("t\tn\n\x01"), "'t\\tn\\n\\x01'");
  EXPECT_EQ(py::repr("caf\xc3\xa9"), "'caf\xc3\xa9'");
}

}  // namespace
}  // namespace pasture::conf
