// Oracle adapter: reads keyhole simulator inputs (one JSON a line) on stdin, runs
// @cloud-copilot/iam-simulate, prints {"decision": ...} or {"error": ...} a line.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import readline from 'node:readline';

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const c = JSON.parse(line);
  const req = c.request;
  const principal = req.principal === 'anonymous' ? { type: 'Anonymous' } : req.principal;
  const account = req.resourceAccount ?? (typeof principal === 'string' ? principal.split(':')[4] : '000000000000');
  const sim = {
    request: {
      principal,
      action: req.action,
      resource: { resource: req.resource, accountId: account },
      contextVariables: req.context ?? {},
    },
    identityPolicies: (c.identityPolicies ?? []).map((p, i) => ({ name: `identity${i}`, policy: p })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  if (c.resourcePolicy) sim.resourcePolicy = c.resourcePolicy;
  if (c.permissionBoundaries) sim.permissionBoundaryPolicies = c.permissionBoundaries.map((p, i) => ({ name: `boundary${i}`, policy: p }));
  if (c.sessionPolicy) sim.sessionPolicy = c.sessionPolicy;
  if (c.blockPublicAccess) sim.additionalSettings = { s3: { blockPublicAccess: true } };
  try {
    const r = await runSimulation(sim, { simulationMode: 'Strict' });
    if (r.resultType === 'error') {
      console.log(JSON.stringify({ error: r.errors.message, details: r.errors }));
    } else {
      const ignored = r.resultType === 'single' ? r.result.ignoredContextKeys : undefined;
      console.log(JSON.stringify({ decision: r.overallResult, ignoredContextKeys: ignored }));
    }
  } catch (e) {
    console.log(JSON.stringify({ error: String(e) }));
  }
}
