"""The ordered rule table, by family; `fleet.judgement.catalogue.RULES` puts them in order."""
