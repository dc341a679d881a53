// conf/paste: paste.deploy resolution (reference §2-§5).
#include <gtest/gtest.h>

#include "conf/paste.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

using paste::ContextPtr;
using paste::ObjectType;

class ConfPaste : public ::testing::Test {
 protected:
  ContextPtr load(ObjectType t, const std::string& file, const std::string& name,
                  std::vector<std::pair<std::string, std::string>> vars = {}) {
    auto gc = std::make_shared<py::Dict>();
    for (const auto& [k, v] : vars) gc->set(k, v);
    return resolver_.loadcontext(t, "config:" + dir_.path() + "/" + file, name, "", gc);
  }
  py::Error load_error(ObjectType t, const std::string& file, const std::string& name) {
    try {
      load(t, file, name);
    } catch (const py::Error& e) {
      return e;
    }
    ADD_FAILURE() << "no error loading " << name;
    return py::Error("", 0, "", "");
  }
  static std::string get(const paste::DictPtr& d, const std::string& k) {
    const py::Value* v = d->find(k);
    return v ? v->value : "<absent>";
  }

  testing::TempDir dir_;
  paste::Resolver resolver_;
};

TEST_F(ConfPaste, DefaultKeysAreDroppedFromLocalConfAndSetOverrides) {
  dir_.write("a.ini",
             "[DEFAULT]\nport = 8080\ndebug = true\n"
             "[app:main]\nuse = egg:Paste#static\nport = 9999\nset debug = false\ndocument_root = %(here)s/www\n");
  auto ctx = load(ObjectType::App, "a.ini", "");
  EXPECT_EQ(ctx->kind(), "app");
  EXPECT_EQ(ctx->factory.str(), "egg:Paste#static");
  EXPECT_EQ(ctx->protocol, "paste.app_factory");
  EXPECT_FALSE(ctx->local_conf->contains("port"));  // key also in DEFAULT: dropped
  EXPECT_EQ(get(ctx->local_conf, "document_root"), dir_.path() + "/www");
  EXPECT_EQ(get(ctx->global_conf, "port"), "8080");
  EXPECT_EQ(get(ctx->global_conf, "debug"), "false");
  EXPECT_EQ(ctx->factory_loc.line, 5);
  ASSERT_EQ(ctx->sections.size(), 1u);
  EXPECT_EQ(ctx->sections[0].section, "app:main");
  EXPECT_EQ(ctx->sections[0].line, 4);
}

TEST_F(ConfPaste, UseChainGetAndPrecedence) {
  dir_.write("a.ini",
             "[DEFAULT]\nlevel = info\n"
             "[app:outer]\nuse = inner\nshared = outer\nset who = outer\nget lvl = level\n"
             "[app:inner]\nuse = egg:Paste#static\nshared = inner\nonly_inner = 1\nset who = inner\n");
  auto ctx = load(ObjectType::App, "a.ini", "outer");
  EXPECT_EQ(get(ctx->local_conf, "shared"), "outer");
  EXPECT_EQ(get(ctx->local_conf, "only_inner"), "1");
  EXPECT_EQ(get(ctx->local_conf, "lvl"), "info");
  EXPECT_EQ(get(ctx->global_conf, "who"), "outer");
  ASSERT_EQ(ctx->sections.size(), 2u);
  EXPECT_EQ(ctx->sections[0].section, "app:outer");
  EXPECT_EQ(ctx->sections[1].section, "app:inner");
  EXPECT_EQ(ctx->factory_section, "app:inner");
}

TEST_F(ConfPaste, ConfigIncludeIsRelativeToTheIncludingFile) {
  dir_.write("etc/main.ini",
             "[DEFAULT]\nouter = O\n[composite:main]\nuse = config:../lib/other.ini#thing\n");
  dir_.write("lib/other.ini",
             "[DEFAULT]\nouter = inner-default\n"
             "[composite:thing]\nuse = egg:Paste#urlmap\n/ = leaf\nref = %(outer)s %(here)s\nouter = dropped\n"
             "[app:leaf]\nuse = egg:pasture#echo\n");
  auto ctx = load(ObjectType::App, "etc/main.ini", "", {{"cli", "v"}});
  EXPECT_EQ(ctx->kind(), "composite");
  // The included file's DEFAULT wins for interpolation, the caller's in global_conf.
  // The section's own value wins for %(outer)s, but the key itself is dropped.
  EXPECT_EQ(get(ctx->local_conf, "ref"), "dropped " + dir_.path() + "/lib");
  EXPECT_FALSE(ctx->local_conf->contains("outer"));
  EXPECT_EQ(get(ctx->global_conf, "outer"), "O");
  EXPECT_EQ(get(ctx->global_conf, "cli"), "v");
  EXPECT_EQ(get(ctx->global_conf, "__file__"), dir_.path() + "/etc/main.ini");
  EXPECT_EQ(ctx->sections.back().file, dir_.path() + "/etc/../lib/other.ini");
}

TEST_F(ConfPaste, VarsDoNotOverrideDefaultForInterpolation) {
  dir_.write("a.ini", "[DEFAULT]\nhttp_port = 8080\n[server:main]\nuse = egg:Paste#http\nport = %(http_port)s\n");
  auto ctx = load(ObjectType::Server, "a.ini", "", {{"http_port", "9000"}});
  EXPECT_EQ(get(ctx->local_conf, "port"), "8080");
  EXPECT_EQ(get(ctx->global_conf, "http_port"), "9000");
  EXPECT_EQ(ctx->protocol, "paste.server_runner");
}

TEST_F(ConfPaste, PipelineFilterAppAndFilterWith) {
  dir_.write("a.ini",
             "[pipeline:main]\npipeline = egg:Paste#gzip auth app\n"
             "[filter:auth]\nuse = egg:Paste#auth_basic\nfilter-with = log\n"
             "[filter:log]\nuse = egg:Paste#translogger\n"
             "[app:app]\nuse = egg:Paste#static\n"
             "[filter-app:fa]\nuse = egg:Paste#gzip\nnext = app\n");
  auto p = load(ObjectType::App, "a.ini", "main");
  ASSERT_EQ(p->kind(), "pipeline");
  ASSERT_EQ(p->filter_contexts.size(), 2u);
  EXPECT_EQ(p->filter_contexts[0]->factory.str(), "egg:Paste#gzip");
  EXPECT_EQ(p->filter_contexts[1]->kind(), "filter_with");
  EXPECT_EQ(p->filter_contexts[1]->filter_context->requested_name, "log");
  EXPECT_EQ(p->app_context->factory.str(), "egg:Paste#static");
  auto fa = load(ObjectType::App, "a.ini", "fa");
  ASSERT_EQ(fa->kind(), "filter_app");
  EXPECT_EQ(fa->filter_context->protocol, "paste.filter_app_factory");
  EXPECT_EQ(fa->next_context->sections[0].section, "app:app");
}

TEST_F(ConfPaste, LookupErrorsUsePasteDeployWording) {
  dir_.write("a.ini",
             "[app:main]\nuse = egg:Paste#nothing\n"
             "[app:dup]\nuse = egg:Paste#static\n[pipeline:dup]\npipeline = main\n"
             "[pipeline:extra]\npipeline = main\nuse = x\n"
             "[app:noloader]\nk = v\n");
  std::string f = dir_.path() + "/a.ini";
  auto e = load_error(ObjectType::App, "a.ini", "main");
  EXPECT_EQ(e.py_str(),
            "LookupError: Entry point 'nothing' not found in egg 'Paste' (protocols: paste.app_factory, "
            "paste.composite_factory, paste.composit_factory)");
  EXPECT_EQ(e.line(), 2);  // the `use` line
  e = load_error(ObjectType::App, "a.ini", "dup");
  EXPECT_EQ(e.text(), "Ambiguous section names ['app:dup', 'pipeline:dup'] for section 'dup' (prefixed by 'app' or "
                      "'application' or 'composite' or 'composit' or 'pipeline' or 'filter-app') found in config " + f);
  e = load_error(ObjectType::App, "a.ini", "extra");
  EXPECT_EQ(e.text(), "The [pipeline:extra] pipeline section in " + f + " has extra (disallowed) settings: use");
  e = load_error(ObjectType::App, "a.ini", "noloader");
  EXPECT_EQ(e.text(), "No loader given in section 'app:noloader'");
  e = load_error(ObjectType::Server, "a.ini", "");
  EXPECT_EQ(e.text(), "No section 'main' (prefixed by 'server') found in config " + f);
}

TEST_F(ConfPaste, CyclesAreRecursionErrors) {
  dir_.write("a.ini", "[app:main]\nuse = main\n");
  EXPECT_EQ(load_error(ObjectType::App, "a.ini", "").type(), "RecursionError");
}

TEST_F(ConfPaste, FragmentNamesTheObject) {
  dir_.write("a.ini", "[app:other]\nuse = egg:pasture#echo\n");
  auto ctx = resolver_.loadcontext(ObjectType::App, "config:" + dir_.path() + "/a.ini#other", "", "", nullptr);
  EXPECT_EQ(ctx->sections[0].section, "app:other");
  ctx = resolver_.loadcontext(ObjectType::App, "config:a.ini#other", "", dir_.path(), nullptr);
  EXPECT_EQ(ctx->factory.str(), "egg:pasture#echo");
}

}  // namespace
}  // namespace pasture::conf
