"""fleet's judgement: what an SMTP reply or a network fault means, and what to do about it.

`fleet.classify` is the door the rest of fleet uses; the modules here are what is behind it:
`evidence` (what a reply's words prove: its enhanced code, an echoed IP, a listed domain),
`context` (what a remediation may mention), `rule_ids` and `rule` (a rule and its name),
`remedies` and `vocabulary` (the texts and word families rules share), the ordered rule
table in `rules/` (`catalogue.RULES`), `replies` (the first rule that matches decides, else a
fallback by code), `oauth_refusals`, `own_decisions` and `faults` (exceptions), and
`flag_texts` (the words of the flags the matrix, the delivery check and the runner raise
themselves, keyed by FlagCode).
"""
