"""Attribution: link suspicious accounts into campaigns (one actor's accounts) with evidence.

See docs/attribution.md for the evidence kinds, their weights and the measured quality.
"""

from distillguard.attribution.campaign import ATLAS_NAMES, Campaign, Evidence, campaign_id, campaigns_to_json
from distillguard.attribution.find import AttributionConfig, find_campaigns, suspicious
from distillguard.attribution.linking import KINDS, LinkConfig

__all__ = ["ATLAS_NAMES", "KINDS", "AttributionConfig", "Campaign", "Evidence", "LinkConfig", "campaign_id",
           "campaigns_to_json", "find_campaigns", "suspicious"]
