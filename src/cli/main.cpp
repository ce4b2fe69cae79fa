#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"

namespace dspark::cli {

const char* default_model_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("DSPARK_MODELS_DIR");
    return std::string(dir && *dir ? dir : "models") + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  }();
  return path.c_str();
}

}  // namespace dspark::cli

namespace {

void print_usage() {
  std::printf(
      "dspark %s: LLM inference with speculative decoding\n\n"
      "usage: dspark <command> [options]\n\n"
      "commands:\n"
      "  generate   run a prompt through a model and stream the text\n"
      "  bench      measure decode speed, batched forward cost and memory bandwidth\n"
      "  serve      serve the OpenAI-compatible HTTP API\n"
      "  capture    write the target's features and top-k for DSpark drafter training\n"
      "  version    print the version\n\n"
      "Run 'dspark <command> --help' for the options of a command.\n",
      DSPARK_VERSION);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "generate") return dspark::cli::run_generate(argc - 1, argv + 1);
  if (command == "bench") return dspark::cli::run_bench(argc - 1, argv + 1);
  if (command == "serve") return dspark::cli::run_serve(argc - 1, argv + 1);
  if (command == "capture") return dspark::cli::run_capture(argc - 1, argv + 1);
  if (command == "version" || command == "--version") {
    std::printf("dspark %s\n", DSPARK_VERSION);
    return 0;
  }
  std::fprintf(stderr, "dspark: unknown command '%s' (see 'dspark --help')\n", command.c_str());
  return 2;
}
