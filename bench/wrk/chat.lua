-- wrk script: POST one chat completion per request, streaming when WRK_STREAM=1.
-- Prints one "BENCH key=value ..." line at the end for bench/run.sh to parse.
-- No response() callback on purpose: it makes wrk copy every body into Lua and would slow the
-- generator down more than the proxies it measures; run.sh checks the bodies once with curl instead.
local stream = os.getenv("WRK_STREAM") == "1"
local model = os.getenv("WRK_MODEL") or "gpt-4o-mini"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"model":"' .. model .. '",' .. (stream and '"stream":true,' or '')
  .. '"messages":[{"role":"system","content":"You are a helpful assistant."},'
  .. '{"role":"user","content":"Write a haiku about the sea."}],"max_tokens":200}'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d non2xx=%d timeouts=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
