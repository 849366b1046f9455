// Coco's default constitution, part 3 of 4: `resolve`, run after every ballot. A strict
// majority of the Active members decides: yes votes accept, no votes reject. Votes of members
// that are not Active (Accepted but not yet acknowledged, or removed since) do not count.

function activeMemberIds() {
  const ids = new Set();
  ccf.kv["public:ccf.gov.members.info"].forEach((value, key) => {
    if (ccf.bufToJsonCompatible(value).status === "Active") ids.add(ccf.bufToStr(key));
  });
  return ids;
}

export function resolve(proposal, proposerId, votes) {
  const active = activeMemberIds();
  const counted = new Set();
  let yes = 0;
  let no = 0;
  for (const { member_id: memberId, vote } of votes) {
    if (!active.has(memberId) || counted.has(memberId)) continue;
    counted.add(memberId);
    if (vote === true) yes++;
    else no++;
  }
  const majority = Math.floor(active.size / 2) + 1;
  if (active.size > 0 && yes >= majority) return "Accepted";
  if (active.size > 0 && no >= majority) return "Rejected";
  return "Open";
}
