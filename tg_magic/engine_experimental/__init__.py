"""`textgrad.engine_experimental`: TextGrad's LiteLLM engines, answered by tg-magic's own."""
