// Unit tests of the chat template interpreter: expressions, filters, tests, statements,
// whitespace control, errors and limits, the Message API and find_chat_template. Expected
// strings are what Python's jinja2 (HF settings) prints for the same templates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <cstring>
#include "dspark/chat_template.h"

namespace dspark::chat {
namespace {

// Renders source with a JSON context; failures come back as "ERROR: <message>".
std::string render(const std::string& source, const std::string& context = "{}") {
  auto t = ChatTemplate::parse(source);
  if (!t.ok()) return "ERROR: " + t.error().message;
  auto out = t->render_json(context);
  return out.ok() ? *out : "ERROR: " + out.error().message;
}

std::string parse_error(const std::string& source) {
  auto t = ChatTemplate::parse(source);
  return t.ok() ? "" : t.error().message;
}

TEST(ChatTemplateExpr, ArithmeticAndPrecedence) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}"),
            "7 9 64 4");
  EXPECT_EQ(
      render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7.5 // 2 }}"),
      "3 -4 2 3.5 2.0 3.0");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }}"),
            "0.30000000000000004 1e+16 1000000000000000.0 0.0001 1e-05 -0.0");
  EXPECT_EQ(render("{{ 1 ~ 2 ~ none ~ true }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ true + 1 }}"),
            "12NoneTrue abab [1, 2] 2");
  EXPECT_EQ(render("{{ 'a' + 'b' | upper }}"), "aB");  // filters bind tighter than +
  EXPECT_EQ(render("{{ -1 | abs }} {{ not 1 == 2 }}"), "1 True");
}

TEST(ChatTemplateExpr, ComparisonsAndLogic) {
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }}"),
            "True False True True");
  EXPECT_EQ(render("{{ (1,) == [1] }} {{ 'b' > 'a' }} {{ 'é' > 'z' }} {{ none == none }}"),
            "False True True True");
  EXPECT_EQ(
      render("{{ 2 in [1, 2] }} {{ 'ell' in 'hello' }} {{ 'k' in {'k': 1} }} {{ 3 not in [] }}"),
      "True True True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and [] }} {{ none or none }} {{ 'a' if 0 else 'b' }}"),
            "x [] None b");
  EXPECT_EQ(render("[{{ 'a' if false }}]"), "[]");
}

TEST(ChatTemplateExpr, LiteralsAndRepr) {
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, {'k': [1]}] }}"),
            "[1, 'a', None, True, 1.5, {'k': [1]}]");
  EXPECT_EQ(render("{{ (1, 'x') }} {{ (1,) }} {{ () }} {{ {} }}"), "(1, 'x') (1,) () {}");
  EXPECT_EQ(render(R"({{ ["it's", 'say "hi"', 'both \' "', 'nl\n'] }})"),
            R"(["it's", 'say "hi"', 'both \' "', 'nl\n'])");
  EXPECT_EQ(render(R"({{ '\u00e9\x41\101\t' | tojson }} {{ 'a' 'b' }})"), R"("éAA\t" ab)");
  EXPECT_EQ(render("{{ 0x1f }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }} {{ 2.5e3 }}"),
            "31 5 15 1000 2500.0");
}

TEST(ChatTemplateExpr, AttributesItemsAndSlices) {
  const std::string ctx =
      R"({"m": {"role": "user", "items": 3, "list": [1, 2, 3, 4]}, "s": "héllo"})";
  EXPECT_EQ(render("{{ m.role }} {{ m['role'] }} {{ m.missing }}|{{ m['items'] }}", ctx),
            "user user |3");
  EXPECT_EQ(render("{{ m.list[-1] }} {{ m.list[1:3] }} {{ m.list[::-1] }} {{ m.list[::2] }}", ctx),
            "4 [2, 3] [4, 3, 2, 1] [1, 3]");
  EXPECT_EQ(render("{{ s[1] }} {{ s[-1] }} {{ s[1:3] }} {{ s | length }} {{ s[9] }}|", ctx),
            "é o él 5 |");
  EXPECT_EQ(render("{{ m.list.0 }} {{ none.x }}|", ctx), "1 |");
}

TEST(ChatTemplateFilters, Strings) {
  EXPECT_EQ(render("{{ '  a b  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hi' | upper }}"),
            "a b|hi|HI");
  EXPECT_EQ(
      render(
          "{{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ 'a-b' | replace('-', '+') }}"),
      "Hello World Hello a+b");
  EXPECT_EQ(render("{{ 'ÀÉÎ straße' | lower }} {{ 'straße' | upper }} {{ 'ΣΊΣΥΦΟΣ' | lower }}"),
            "àéî straße STRASSE σίσυφος");
  EXPECT_EQ(render("{{ 5 | string }} {{ none | string }} {{ [1] | string }} {{ '<&>' | e }}"),
            "5 None [1] &lt;&amp;&gt;");
  EXPECT_EQ(render("{{ 'ab' | list }} {{ 'abc' | reverse }} {{ 'x\ny' | indent(2, true) }}"),
            "['a', 'b'] cba   x\n  y");
}

TEST(ChatTemplateFilters, Sequences) {
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }} {{ ['b', 'A'] | sort }} {{ [1, 2] | reverse | list }}"),
            "[1, 2, 3] ['A', 'b'] [2, 1]");
  EXPECT_EQ(render("{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ [] | first }}|"), "1 3 |");
  EXPECT_EQ(render("{{ [1, 2, 3] | join(', ') }} {{ [1, 5, 3] | max }} {{ [1, 5] | sum }}"),
            "1, 2, 3 5 6");
  EXPECT_EQ(
      render("{{ ['a', 'A', 'b'] | unique | list }} {{ [1, 2, 3, 4] | select('even') | list }}"),
      "['a', 'b'] [2, 4]");
  const std::string ctx = R"({"ms": [{"role": "user", "n": 1}, {"role": "bot", "n": 2}]})";
  EXPECT_EQ(
      render("{{ ms | map(attribute='role') | join('/') }} "
             "{{ ms | selectattr('role', 'equalto', 'bot') | map(attribute='n') | list }} "
             "{{ ms | rejectattr('n', 'gt', 1) | list | length }} {{ ms | sum(attribute='n') }}",
             ctx),
      "user/bot [2] 1 3");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | dictsort }} {{ {'a': 1} | items | list }}"),
            "[('a', 2), ('b', 1)] [('a', 1)]");
  EXPECT_EQ(render("{{ ['x', 'y'] | map('upper') | list }} {{ [1, 'a'] | map('string') | join }}"),
            "['X', 'Y'] 1a");
  // Lazy filters give generators, as in jinja2: always true, no len(), empty for a falsy value.
  EXPECT_EQ(render("{{ 'yes' if [] | select('odd') else 'no' }} {{ false | map('upper') | list }} "
                   "{{ [1, 2] | reverse | first }}"),
            "yes [] 2");
  EXPECT_NE(render("{{ [1] | map('string') | length }}").find("has no len()"), std::string::npos);
  EXPECT_NE(render("{{ [{'a': 1}] | unique | list }}").find("unhashable"), std::string::npos);
}

TEST(ChatTemplateFilters, NumbersDefaultsAndJson) {
  EXPECT_EQ(render("{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' "
                   "| float }}"),
            "42 4 7 3 2.5");
  EXPECT_EQ(render("{{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ 2.1 | round(0, 'ceil') }}"),
            "2.0 3.14 3.0");
  EXPECT_EQ(render("{{ x | default('d') }} {{ '' | default('d') }}|{{ '' | default('d', true) }} "
                   "{{ none | d('n') }}"),
            "d |d None");
  EXPECT_EQ(render(R"({{ {'b': [1, 2.0, none, true], 'a': 'é"'} | tojson }})"),
            R"({"b": [1, 2.0, null, true], "a": "é\""})");
  EXPECT_EQ(render("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ 'é' | tojson(true) }}"),
            "{\"a\": 2, \"b\": 1} \"\\u00e9\"");
  EXPECT_EQ(render("{{ x | tojson }}").rfind("ERROR: ", 0), 0u);
}

TEST(ChatTemplateTests, IsTests) {
  EXPECT_EQ(render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is number }}"),
            "False True True True");
  EXPECT_EQ(
      render("{{ 'a' is string }} {{ [] is iterable }} {{ {} is mapping }} {{ 1.0 is float }}"),
      "True True True True");
  EXPECT_EQ(render("{{ true is boolean }} {{ 1 is integer }} {{ true is integer }} {{ 3 is odd }}"),
            "True True False True");
  EXPECT_EQ(render("{{ 6 is divisibleby 3 }} {{ 2 is in [1, 2] }} {{ 'a' is equalto 'a' }} "
                   "{{ 1 is not eq 2 }} {{ 3 is gt 2 }} {{ 'AB' is upper }}"),
            "True True True True True True");
  EXPECT_EQ(render("{{ range is callable }} {{ 'upper' is filter }} {{ 'odd' is test }}"),
            "True True True");
}

TEST(ChatTemplateTests, StringAndDictMethods) {
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a=b=c'.split('=', 1) }} "
                   "{{ 'a-b-c'.rsplit('-', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b=c'] ['a-b', 'c']");
  EXPECT_EQ(render("{{ 'xhix'.strip('x') }} {{ '\\n\\nx'.lstrip('\\n') }} {{ 'x  '.rstrip() }}|"
                   "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }}"),
            "hi x x|True True");
  EXPECT_EQ(render("{{ 'héllo'.find('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} "
                   "{{ 'hello world'.title() }} {{ 'a\\nb'.splitlines() }}"),
            "2 2 a-b Hello World ['a', 'b']");
  EXPECT_EQ(render("{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 2) }} "
                   "{{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }}"),
            "1 None 2 ['a'] [1]");
  EXPECT_EQ(render("{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "x1y2");
  EXPECT_NE(render("{{ [1].append(2) }}").find("unsafe"), std::string::npos);
}

TEST(ChatTemplateStatements, LoopsAndScopes) {
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.index }}{% endfor %}"),
            "2142");
  EXPECT_EQ(render("{% for x in [] %}no{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.cycle('a', 'b') }}{{ loop.previtem }}|"
                   "{% endfor %}"),
            "a|b1|a2|");
  EXPECT_EQ(render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
                   "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "013");
  // set inside a loop does not leak; a namespace carries values out.
  EXPECT_EQ(
      render("{% set x = 0 %}{% for i in range(3) %}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}"),
      "1110");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
                   "{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"), "37");
  EXPECT_EQ(
      render("{% for c in 'hé' %}[{{ c }}]{% endfor %}{% for k in {'a': 1} %}{{ k }}{% endfor %}"),
      "[h][é]a");
}

TEST(ChatTemplateStatements, MacrosSetBlocksAndFilters) {
  EXPECT_EQ(render("{% macro m(a, b='B', c=1 + 1) %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
                   "{{ m(1) }} {{ m(1, 2) }} {{ m(a='x', c=3) }}"),
            "1B2 122 xB3");
  EXPECT_EQ(
      render(
          "{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"),
      "3210");
  EXPECT_EQ(render("{% set t | upper %}a{{ 1 + 1 }}{% endset %}{{ t }}"), "A2");
  EXPECT_EQ(render("{% filter replace('a', 'o') | upper %}banana{% endfilter %}"), "BONONO");
  EXPECT_EQ(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}"), "3False");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(render("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
  EXPECT_EQ(render("{{ raise_exception is defined }} {{ dict(a=1) }}"), "True {'a': 1}");
}

TEST(ChatTemplateWhitespace, TrimAndLstripBlocks) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("a  {{- ' x ' -}}  b"), "a x b");
  EXPECT_EQ(render("a\n  {%- if true -%}\n  b\n  {%- endif %}\nc"), "abc");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif +%}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("x {% if true %}y{% endif %}\n"), "x y");  // trailing newline dropped
  EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
  EXPECT_EQ(render("a {#- note -#} b"), "ab");
  EXPECT_EQ(render("{{ 'v' }}\nnext"), "v\nnext");  // no trimming after expressions
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
}

TEST(ChatTemplateErrors, ParseErrorsNameThePlace) {
  EXPECT_NE(parse_error("ok\n{% include 'x' %}").find("line 2, column 4"), std::string::npos);
  EXPECT_NE(parse_error("{% include 'x' %}").find("'include' tag is not supported"),
            std::string::npos);
  EXPECT_NE(parse_error("{{ x | nosuchfilter }}").find("no filter named 'nosuchfilter'"),
            std::string::npos);
  EXPECT_NE(parse_error("{{ x is nosuchtest }}").find("no test named"), std::string::npos);
  EXPECT_NE(parse_error("{% for x in y %}").find("expected 'endfor' or 'else'"), std::string::npos);
  EXPECT_NE(parse_error("{{ 'abc }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(parse_error("{{ (1 }}").find("line 1"), std::string::npos);
  EXPECT_NE(parse_error("{% break %}").find("outside of a loop"), std::string::npos);
  EXPECT_NE(parse_error("{# open").find("missing end of comment"), std::string::npos);
  EXPECT_NE(parse_error("{{ x").find("not closed"), std::string::npos);
  EXPECT_NE(parse_error("{% endif %}").find("unexpected tag 'endif'"), std::string::npos);
  EXPECT_NE(parse_error("{{ 99999999999999999999 }}").find("too large"), std::string::npos);
}

TEST(ChatTemplateErrors, RenderErrors) {
  EXPECT_EQ(render("{{ raise_exception('Roles must alternate') }}"), "ERROR: Roles must alternate");
  EXPECT_NE(render("{{ x.y }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(render("\n  {{ 1 / 0 }}").find("line 2, column 8: division by zero"),
            std::string::npos);
  EXPECT_NE(render("{{ 'a' + 1 }}").find("can only concatenate str"), std::string::npos);
  EXPECT_NE(render("{{ 'a' < 1 }}").find("not supported between"), std::string::npos);
  EXPECT_NE(render("{% for x in none %}{% endfor %}").find("not iterable"), std::string::npos);
  EXPECT_NE(render("{{ 5() }}").find("not callable"), std::string::npos);
  EXPECT_NE(render("{% set x = 1 %}{% set x.a = 2 %}").find("non-namespace"), std::string::npos);
  EXPECT_NE(render("{{ 9223372036854775807 + 1 }}").find("overflow"), std::string::npos);
  EXPECT_NE(render("{{ none | length }}").find("has no len()"), std::string::npos);
  EXPECT_NE(render("{}", "[1]").find("must be an object"), std::string::npos);
  EXPECT_NE(render("{}", "{bad").find("not valid JSON"), std::string::npos);
}

TEST(ChatTemplateErrors, LimitsStopRunawayTemplates) {
  EXPECT_NE(render("{{ 'x' * 100000000 }}").find("exceeds"), std::string::npos);
  EXPECT_NE(
      render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
          .find("step limit"),
      std::string::npos);
  EXPECT_NE(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nest too deeply"),
            std::string::npos);
  EXPECT_NE(render("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
                   "{% endfor %}")
                .find("nests too deeply"),
            std::string::npos);
  EXPECT_NE(render("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}").find("too deeply"),
            std::string::npos);
  EXPECT_NE(render("{{ range(1000000) }}").find("Range too big"), std::string::npos);
  EXPECT_NE(parse_error("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}")
                .find("too deeply"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(parse_error(chain + " }}").find("too deeply"), std::string::npos);
  EXPECT_NE(parse_error("{{ " + std::string(3000, '[') + std::string(3000, ']') + " }}")
                .find("too deeply"),
            std::string::npos);
}

TEST(ChatTemplateErrors, HugeOperandsStayBounded) {
  EXPECT_EQ(render("[{{ '' * 1000000000000000000 }}] {{ [] * 1000000000000000000 }}"), "[] []");
  EXPECT_EQ(render("{{ (-1) ** 9223372036854775807 }} {{ 'abc'[1::9223372036854775807] }}"),
            "-1 b");
  EXPECT_EQ(render("{{ range(9223372036854775800, 9223372036854775807, 5) | list }}"),
            "[9223372036854775800, 9223372036854775805]");
  EXPECT_EQ(render("{{ 1.5 | round(400) }} {{ 2 ** 62 }}"), "1.5 4611686018427387904");
  EXPECT_NE(render("{{ 2 ** 64 }}").find("overflow"), std::string::npos);
  // Rebuilding a growing string in a loop is quadratic work: the step budget stops it.
  EXPECT_NE(render("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
                   "{% set ns.s = ns.s ~ 'xxxxxxxxxx' %}{% endfor %}")
                .find("step limit"),
            std::string::npos);
}

TEST(ChatTemplateApi, RenderMessagesMatchesJsonContext) {
  const std::string src =
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}{% if m.name is defined %}:{{ m.name }}"
      "{% endif %}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}"
      "<assistant>{% endif %}{{ tools is none }}";
  auto t = ChatTemplate::parse(src);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->source(), src);
  std::vector<Message> msgs = {{"system", "S", std::nullopt}, {"user", "héllo", "bob"}};
  RenderOptions opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  auto out = t->render(msgs, opt);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "<s><system>S</s><user:bob>héllo</s><assistant>True");
  opt.add_generation_prompt = false;
  auto json = t->render_json(
      R"({"bos_token": "<s>", "eos_token": "</s>", "tools": null, "add_generation_prompt": false,
          "messages": [{"role": "system", "content": "S"},
                       {"role": "user", "content": "héllo", "name": "bob"}]})");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*t->render(msgs, opt), *json);
}

TEST(ChatTemplateApi, OutputLimitScalesWithInput) {
  auto t = ChatTemplate::parse("{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  std::vector<Message> msgs = {{"user", std::string(3 << 20, 'a'), std::nullopt}};
  auto out = t->render(msgs, RenderOptions{});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->size(), size_t{6} << 20);
  RenderOptions small;
  small.max_output_bytes = 10;
  auto big = ChatTemplate::parse("{% for i in range(100) %}0123456789{% endfor %}");
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(big->render({}, small).ok());
}

// ---- find_chat_template ----

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("dspark_chat_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return (path_ / name).string();
  }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// A folder that opens as a Hugging Face model: config.json and an empty safetensors file.
std::shared_ptr<ModelFile> hf_folder(const TempDir& dir) {
  dir.write("config.json", "{}");
  std::string header = "{}";
  while (header.size() % 8) header += ' ';
  std::string st(8, '\0');
  st[0] = static_cast<char>(header.size());
  dir.write("model.safetensors", st + header);
  auto file = ModelFile::open(dir.str());
  EXPECT_TRUE(file.ok()) << file.error().message;
  return file.ok() ? file.value() : nullptr;
}

// A GGUF v3 image without tensors holding one key: a string (type 8) or a u32 (type 4).
std::string gguf_with(const std::string& key, const std::string* text, uint32_t number) {
  std::string out = "GGUF";
  auto pod = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  auto str = [&](const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    out += s;
  };
  pod(uint32_t{3});
  pod(uint64_t{0});  // tensors
  pod(uint64_t{1});  // key/value pairs
  str(key);
  if (text) {
    pod(uint32_t{8});
    str(*text);
  } else {
    pod(uint32_t{4});
    pod(number);
  }
  while (out.size() % 32) out += '\0';
  return out;
}

std::shared_ptr<ModelFile> open_bytes(const std::string& bytes) {
  auto file =
      ModelFile::parse_gguf_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_TRUE(file.ok()) << file.error().message;
  return file.ok() ? file.value() : nullptr;
}

TEST(FindChatTemplate, Gguf) {
  const std::string text = "{{ messages }}";
  auto file = open_bytes(gguf_with("tokenizer.chat_template", &text, 0));
  ASSERT_TRUE(file);
  auto found = find_chat_template(*file);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->value_or("none"), "{{ messages }}");

  auto without = open_bytes(gguf_with("general.name", &text, 0));
  ASSERT_TRUE(without);
  auto none = find_chat_template(*without);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  auto wrong = open_bytes(gguf_with("tokenizer.chat_template", nullptr, 3));
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(find_chat_template(*wrong).ok());
}

TEST(FindChatTemplate, HfFolder) {
  {
    TempDir dir;
    auto file = hf_folder(dir);
    ASSERT_TRUE(file);
    auto none = find_chat_template(*file);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    dir.write("tokenizer_config.json", R"({"chat_template": "T1"})");
    EXPECT_EQ(find_chat_template(*file)->value_or(""), "T1");
    dir.write("tokenizer_config.json",
              R"({"chat_template": [{"name": "tool_use", "template": "T2"},
                                    {"name": "default", "template": "T3"}]})");
    EXPECT_EQ(find_chat_template(*file)->value_or(""), "T3");
    dir.write("chat_template.jinja", "T4");  // the .jinja file wins, as in transformers
    EXPECT_EQ(find_chat_template(*file)->value_or(""), "T4");
  }
  {
    TempDir dir;
    auto file = hf_folder(dir);
    ASSERT_TRUE(file);
    dir.write("tokenizer_config.json", R"({"chat_template": 5})");
    EXPECT_FALSE(find_chat_template(*file).ok());
    dir.write("tokenizer_config.json", "{not json");
    EXPECT_FALSE(find_chat_template(*file).ok());
  }
}

}  // namespace
}  // namespace dspark::chat
