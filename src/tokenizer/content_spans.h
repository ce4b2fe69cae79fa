// Content ranges (Tokenizer::encode_with_content) through the encoder's stages: made canonical,
// carried through the replacement of invalid UTF-8, cut to a segment, and mapped into the
// normalizers' output.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/tokenizer.h"
#include "pipeline.h"

namespace dspark::tok {

// The ranges clipped to [0, size), sorted, with overlapping or touching ones merged and empty
// ones dropped.
std::vector<ByteSpan> canonical_spans(std::span<const ByteSpan> spans, size_t size);

// Replaces invalid UTF-8 by U+FFFD run by run (each content range and each gap between them
// separately), writing the result to *out and moving *spans to match.
void sanitize_with_spans(std::string_view text, std::vector<ByteSpan>* spans, std::string* out);

// The parts of the ranges inside [begin, end), shifted so that begin becomes 0.
std::vector<ByteSpan> spans_within(std::span<const ByteSpan> spans, size_t begin, size_t end);

// Where the ranges of text land in normalized = normalize(steps, text): a boundary b maps to the
// size of normalize(text[0, b)) when that is a prefix of normalized. When a normalizer changed
// the text across a boundary, all of normalized counts as content.
std::vector<ByteSpan> normalized_spans(const std::vector<NormalizerStep>& steps,
                                       std::string_view text, std::string_view normalized,
                                       std::span<const ByteSpan> spans);

}  // namespace dspark::tok
