// Drives the official @google/genai client (Gemini API or Vertex AI) against the fake upstream.
// Input: one JSON argument {baseUrl, apiKey | vertex: {project, location, token}, calls: [{name, kind, model}]}.
// Output: one JSON object on stdout, {name: result}, where a failed call's result is {error: {name, status, message}}.
import { GoogleGenAI } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';

const input = JSON.parse(process.argv[2]);
const httpOptions = { baseUrl: input.baseUrl, timeout: 20000 };
let ai;
if (input.vertex) {
  // A token the caller already holds: no metadata server or key file is consulted.
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: input.vertex.token, expiry_date: Date.now() + 3600_000 });
  ai = new GoogleGenAI({
    vertexai: true,
    project: input.vertex.project,
    location: input.vertex.location,
    googleAuthOptions: { authClient },
    httpOptions,
  });
} else {
  ai = new GoogleGenAI({ apiKey: input.apiKey, httpOptions });
}

const weather = {
  functionDeclarations: [
    { name: 'get_weather', description: 'Current weather', parameters: { type: 'OBJECT', properties: { location: { type: 'STRING' } }, required: ['location'] } },
    { name: 'get_time', description: 'Current time', parameters: { type: 'OBJECT', properties: { location: { type: 'STRING' } } } },
  ],
};

function summary(response) {
  const candidate = response.candidates?.[0];
  return {
    text: response.text ?? null,
    parts: candidate?.content?.parts ?? [],
    finishReason: candidate?.finishReason ?? null,
    functionCalls: response.functionCalls ?? [],
    usage: response.usageMetadata ?? null,
    blockReason: response.promptFeedback?.blockReason ?? null,
    modelVersion: response.modelVersion ?? null,
  };
}

async function run(call) {
  const request = { model: call.model, contents: 'Say hello to the fake upstream' };
  switch (call.kind) {
    case 'generate':
      return summary(await ai.models.generateContent(request));
    case 'tools':
      return summary(await ai.models.generateContent({ ...request, config: { tools: [weather] } }));
    case 'thinking':
      return summary(await ai.models.generateContent({ ...request, config: { thinkingConfig: { includeThoughts: true } } }));
    case 'stream':
    case 'streamTools': {
      const config = call.kind === 'streamTools' ? { tools: [weather] } : undefined;
      const chunks = [];
      let text = '';
      let last = null;
      const functionCalls = [];
      try {
        for await (const chunk of await ai.models.generateContentStream({ ...request, config })) {
          chunks.push(chunk.text ?? null);
          text += chunk.text ?? '';
          functionCalls.push(...(chunk.functionCalls ?? []));
          last = chunk;
        }
      } catch (error) {
        return { chunks, text, error: describe(error) };
      }
      return { chunks, text, functionCalls, finishReason: last?.candidates?.[0]?.finishReason ?? null, usage: last?.usageMetadata ?? null };
    }
    case 'countTokens':
      return await ai.models.countTokens({ model: call.model, contents: '1234567890123456' });
    case 'embed': {
      const response = await ai.models.embedContent({ model: call.model, contents: ['alpha', 'beta', 'alpha'], config: { outputDimensionality: 16 } });
      return { embeddings: response.embeddings.map((e) => e.values) };
    }
    default:
      throw new Error(`unknown kind ${call.kind}`);
  }
}

function describe(error) {
  return { name: error?.constructor?.name ?? 'Error', status: error?.status ?? null, message: String(error?.message ?? error) };
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
