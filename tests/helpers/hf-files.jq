# hf-files.jq — a checkpoint's config.json, generation_config.json and tokenizer_config.json against what
# transformers made of the same checkpoint (tests/fixtures/checkpoint/expected.json, written by
# tests/reference/make_checkpoint_fixtures.py).  Prints "same", or one line per difference.
# jq -n -r --arg case NAME --slurpfile want expected.json --slurpfile cfg DIR/config.json
#       --slurpfile gen DIR/generation_config.json --slurpfile tok DIR/tokenizer_config.json -f hf-files.jq
def aslist: if type == "array" or . == null then . else [.] end;
$want[0].cases[$case] as $w
| if $w == null then "no case \($case) in the fixture" else
  [ (["bos_token_id", "eos_token_id", "pad_token_id"][] as $k
      | select($cfg[0][$k] != $w.config[$k])
      | "config.json \($k): \($cfg[0][$k]), transformers read \($w.config[$k])"),
    (["bos_token_id", "eos_token_id", "pad_token_id"][] as $k
      | ($gen[0][$k] | if $k == "eos_token_id" then aslist else . end) as $got
      | select($got != $w.generation[$k])
      | "generation_config.json \($k): \($got), transformers read \($w.generation[$k])"),
    (["bos", "eos", "pad", "unk"][] as $k
      | select($tok[0]["\($k)_token"] != $w.tokenizer["\($k)_token"])
      | "tokenizer_config.json \($k)_token: \($tok[0]["\($k)_token"]), transformers read \($w.tokenizer["\($k)_token"])")
  ] | if length == 0 then "same" else .[] end
  end
