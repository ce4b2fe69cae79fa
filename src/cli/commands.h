// The dspark subcommands. Each takes the arguments after the subcommand name (argv[0] is the
// subcommand) and returns the process exit code.
#pragma once

namespace dspark::cli {

int run_generate(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_capture(int argc, char** argv);  // capture.cpp: drafter training data

// Default model path: $DSPARK_MODELS_DIR (or ./models)/SmolLM2-135M-Instruct.Q4_1.gguf.
const char* default_model_path();

}  // namespace dspark::cli
