"""For test/mergekit-side-by-side-keys.test.ts: PEFT's own adapter and merge, and transformers' chat rendering.

  peft_adapter.py make MODEL ADAPTER     a random LoRA (r 4, alpha 8; q_proj, down_proj, embed_tokens; lm_head saved whole)
  peft_adapter.py merge MODEL ADAPTER OUT   PEFT's merge_and_unload, saved as safetensors
  peft_adapter.py render MODEL...        each model's chat template applied to fixed conversations, as JSON lines
"""
import json
import sys

import torch


def make(model, adapter):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(11)
    m = AutoModelForCausalLM.from_pretrained(model)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj", "embed_tokens"], modules_to_save=["lm_head"], init_lora_weights=False)
    pm = get_peft_model(m, config)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                p.mul_(0.05)  # near the scale of trained updates, so that W + ΔW keeps W's binade
    pm.save_pretrained(adapter)


def merge(model, adapter, out):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(model)
    pm = PeftModel.from_pretrained(m, adapter)
    pm.merge_and_unload().save_pretrained(out, safe_serialization=True)


CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi there "}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
]


def render(models):
    from transformers import AutoTokenizer

    for model in models:
        tok = AutoTokenizer.from_pretrained(model)
        out = []
        for c in CONVERSATIONS:
            for g in (False, True):
                try:
                    out.append(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=g))
                except Exception as e:  # a template that fails (no bos_token here) must fail alike on both sides
                    out.append(f"{type(e).__name__}: {e}")
        print(json.dumps(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"make": make, "merge": merge, "render": lambda *a: render(a)}[cmd](*args)
