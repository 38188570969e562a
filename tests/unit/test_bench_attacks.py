"""bench/attacks.py's headline (issue 35 acceptance 2) from fake finished trials: the figures
the issue names come from the right arm, strategy, duplication and metric, means over seeds,
and the attack's cost from the stages' compute_s."""

from bench.attacks import figures, headline


def row(arm, strategy, seed, values, gen_s, score_s):
    return {"arm": arm, "strategy": strategy, "seed": seed, "key": f"{arm}{strategy}{seed}",
            "values": {"|".join(map(str, k)): v for k, v in values.items()},
            "gen_s": gen_s, "score_s": score_s}


def test_the_headline_takes_each_figure_from_its_arm_strategy_and_copies():
    rows = []
    for seed in (0, 1):
        for s in ("full", "head", "lora"):
            base = {("member", 4, "exact_pct"): 10.0 + seed if s == "full" else 0.0,
                    ("member", 16, "exact_pct"): 50.0, ("nonmember", -1, "exact_pct"): 0.0,
                    ("member", 4, "auc_ref"): 0.6 + 0.1 * seed if s == "lora" else 0.9,
                    ("member", 4, "auc_rmia"): 0.7, ("member", 4, "auc_recall"): 0.55,
                    ("member", 4, "auc_dcpdd"): 0.52, ("member", 16, "auc_ref"): 0.99}
            rows.append(row("greedy", s, seed, base, 10.0, 20.0))
            sampled = {**base, ("member", 4, "discoverable_n100_pct"): 30.0 + 2 * seed,
                       ("member", 4, "exact_pct"): 99.0,  # (the sampled arm's per-sample share)
                       ("member", -1, "rank_precision_at_100"): 40.0 if s == "full" else 1.0}
            rows.append(row("sample100", s, seed, sampled, 100.0, 200.0))
    head = headline(figures(rows))
    assert head["greedy_exact_full_dup4"] == 10.5  # greedy arm, not the sampled 99
    assert head["discoverable_n100_full_dup4"] == 31.0
    assert head["rank_precision_at_100_full"] == 40.0
    assert head["ref_auc_lora_dup4"] == 0.65
    assert (head["rmia_auc_lora_dup4"], head["recall_auc_lora_dup4"],
            head["dcpdd_auc_lora_dup4"]) == (0.7, 0.55, 0.52)
    assert (head["attack_s_per_trial_greedy"], head["attack_s_per_trial_n100"]) == (30.0, 300.0)
    assert head["attack_cost_n100_over_greedy"] == 10.0
