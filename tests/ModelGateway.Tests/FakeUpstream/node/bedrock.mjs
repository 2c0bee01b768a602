// Drives the official @aws-sdk/client-bedrock-runtime client against the fake upstream.
// Input: one JSON argument {endpoint, region, accessKeyId, secretAccessKey, calls: [{name, kind, model}]}.
// Output: one JSON object on stdout, {name: result}, where a failed call's result is {error: {name, status, message}}.
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const input = JSON.parse(process.argv[2]);
const client = new BedrockRuntimeClient({
  region: input.region,
  endpoint: input.endpoint,
  credentials: { accessKeyId: input.accessKeyId, secretAccessKey: input.secretAccessKey },
  // The default handler speaks HTTP/2; the fake (like a plain local endpoint) speaks HTTP/1.1.
  requestHandler: new NodeHttpHandler({ requestTimeout: 20000 }),
  maxAttempts: 1,
});

const toolConfig = {
  tools: [
    { toolSpec: { name: 'get_weather', description: 'Current weather', inputSchema: { json: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } } } },
    { toolSpec: { name: 'get_time', description: 'Current time', inputSchema: { json: { type: 'object', properties: { location: { type: 'string' } } } } } },
  ],
};

function request(call) {
  const body = {
    modelId: call.model,
    messages: [{ role: 'user', content: [{ text: 'Say hello to the fake upstream' }] }],
    inferenceConfig: { maxTokens: 512 },
  };
  if (call.tools) body.toolConfig = toolConfig;
  if (call.thinking) body.additionalModelRequestFields = { thinking: { type: 'enabled', budget_tokens: 1024 } };
  return body;
}

async function run(call) {
  if (!call.stream) {
    const response = await client.send(new ConverseCommand(request(call)));
    return {
      content: response.output?.message?.content ?? [],
      stopReason: response.stopReason,
      usage: response.usage,
      metrics: response.metrics,
      requestId: response.$metadata?.requestId ?? null,
    };
  }

  const response = await client.send(new ConverseStreamCommand(request(call)));
  const events = [];
  let text = '';
  let reasoning = '';
  const toolInputs = {};
  const toolNames = {};
  let stopReason = null;
  let usage = null;
  try {
    for await (const event of response.stream) {
      const kind = Object.keys(event).find((k) => event[k] !== undefined);
      events.push(kind);
      const delta = event.contentBlockDelta?.delta;
      if (delta?.text !== undefined) text += delta.text;
      if (delta?.reasoningContent?.text !== undefined) reasoning += delta.reasoningContent.text;
      if (delta?.toolUse?.input !== undefined) {
        const i = event.contentBlockDelta.contentBlockIndex;
        toolInputs[i] = (toolInputs[i] ?? '') + delta.toolUse.input;
      }
      const start = event.contentBlockStart;
      if (start?.start?.toolUse) toolNames[start.contentBlockIndex] = start.start.toolUse.name;
      if (event.messageStop) stopReason = event.messageStop.stopReason;
      if (event.metadata) usage = event.metadata.usage;
    }
  } catch (error) {
    return { events, text, error: describe(error) };
  }
  const toolCalls = Object.keys(toolNames).map((i) => ({ name: toolNames[i], input: JSON.parse(toolInputs[i] ?? '{}') }));
  return { events, text, reasoning, toolCalls, stopReason, usage };
}

function describe(error) {
  return { name: error?.name ?? 'Error', status: error?.$metadata?.httpStatusCode ?? null, message: String(error?.message ?? error) };
}

const results = {};
for (const call of input.calls) {
  try {
    results[call.name] = await run(call);
  } catch (error) {
    results[call.name] = { error: describe(error) };
  }
}

process.stdout.write(JSON.stringify(results));
