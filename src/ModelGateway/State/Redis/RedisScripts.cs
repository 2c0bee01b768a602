namespace ModelGateway.State.Redis;

/// <summary>
/// The Lua scripts behind shared limits. Each runs atomically in one round trip, takes its time from
/// Redis (<c>TIME</c>), and touches only keys that share one hash tag, so Redis Cluster runs it on
/// one node. The ones on the request path go by SHA-1 (<see cref="RedisScript"/>).
/// </summary>
internal static class RedisScripts
{
    // The scripts on the request path, sent by hash (see RedisScript). Fire-and-forget calls keep the text:
    // a NOSCRIPT answer to one would be lost with nobody to resend it.
    public static readonly RedisScript AdmitKeyScript = new(AdmitKey);
    public static readonly RedisScript SettleKeyScript = new(SettleKey);
    public static readonly RedisScript RenewLeasesScript = new(RenewLeases);
    public static readonly RedisScript AcquireDeploymentScript = new(AcquireDeployment);
    public static readonly RedisScript RecordUsageScript = new(RecordUsage);

    // Days since 1970-01-01 to a civil date (proleptic Gregorian), for budget periods and usage days.
    private const string Civil = """
        local function civil(days)
          local z = days + 719468
          local era = math.floor(z / 146097)
          local doe = z - era * 146097
          local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
          local y = yoe + era * 400
          local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
          local mp = math.floor((5 * doy + 2) / 153)
          local d = doy - math.floor((153 * mp + 2) / 5) + 1
          local m = mp < 10 and mp + 3 or mp - 9
          if m <= 2 then y = y + 1 end
          return y, m, d
        end
        """;

    // A 60-second sliding window kept as one-second buckets in a hash, with the running sum of the live
    // buckets in field 's' and the oldest live bucket's second in field 'o'. A check drops only the
    // seconds that left the window since the last one, so at thousands of requests per second it reads
    // two fields instead of summing 60 buckets (the key expires 120 s after its last write, so a drop
    // walks at most that many seconds).
    private const string Window = """
        local function window(key, now, length)
          length = length or 60
          local head = redis.call('HMGET', key, 's', 'o')
          local sum, oldest = tonumber(head[1] or '0'), tonumber(head[2] or '0')
          if oldest == 0 or oldest > now - length then return sum, oldest end
          local second = oldest
          while second <= now - length do
            local count = redis.call('HGET', key, second)
            if count then
              sum = sum - tonumber(count)
              redis.call('HDEL', key, second)
            end
            second = second + 1
          end
          oldest = 0
          while second <= now do
            if redis.call('HEXISTS', key, second) == 1 then
              oldest = second
              break
            end
            second = second + 1
          end
          if oldest == 0 or sum < 0 then sum = 0 end
          redis.call('HSET', key, 's', sum, 'o', oldest)
          return sum, oldest
        end

        local function add(key, now, amount, oldest, length)
          redis.call('HINCRBY', key, now, amount)
          redis.call('HINCRBY', key, 's', amount)
          if oldest == 0 then redis.call('HSET', key, 'o', now) end
          redis.call('EXPIRE', key, 2 * math.max(60, length or 60))
        end

        -- Corrects the bucket of a reservation (never below zero), and the sum with it.
        local function correct(key, second, delta)
          if redis.call('HEXISTS', key, second) == 0 then return end
          local value = redis.call('HINCRBY', key, second, delta)
          if value < 0 then
            redis.call('HSET', key, second, 0)
            delta = delta - value
          end
          redis.call('HINCRBY', key, 's', delta)
        end
        """;

    // Adds to the bucket of an earlier second (a request served while Redis was away), if that second
    // is still in the window. A second ahead of Redis's clock (replica clocks drift) counts as now.
    private const string AddAt = """
        local function addAt(key, now, second, amount)
          if second > now then second = now end
          if second <= now - 60 or amount == 0 then return end
          local _, oldest = window(key, now)
          redis.call('HINCRBY', key, second, amount)
          redis.call('HINCRBY', key, 's', amount)
          if oldest == 0 or second < oldest then redis.call('HSET', key, 'o', second) end
          redis.call('EXPIRE', key, 120)
        end

        local function spend(key, amount, ttl)
          if amount ~= 0 then
            redis.call('INCRBYFLOAT', key, string.format('%.17g', amount))
            redis.call('EXPIRE', key, ttl)
          end
        end

        -- Limit flags, one character each: rpm, tpm, parallel, daily budget, monthly budget.
        local function on(flags, n) return string.sub(flags, n, n) == '1' end

        local function today(now)
          local y, m, d = civil(math.floor(now / 86400))
          return string.format('%04d%02d%02d', y, m, d), string.format('%04d%02d', y, m)
        end
        """;

    // Settles requests of one key, each exactly once however often it is sent. An admission books the
    // request in the hash ':open' (field = the limiter's operation id, value = second|tokens|cost|day|
    // month|flags of what it reserved); a settle applies only while that record exists and removes it,
    // so a repeat finds nothing to do.
    // ARGV from index `first`: a count, then per request: operation id, mode, actual tokens, actual cost,
    // the key's limit flags. Modes: 'c' the admission's answer was received; 'u' it timed out and the
    // request was served anyway (fail-open); 'x' it timed out and the request was refused.
    // For 'u' and 'x' the admission may have run, may run later (a command stuck in a frozen Redis's
    // buffer), or never: the first settle leaves ':void:ID', which makes a late admission a no-op and a
    // repeated settle a no-op. Then: booked -> corrected ('u') or undone ('x'); not booked -> a served
    // request is counted now ('u'), a refused one needs nothing ('x').
    // Returns the index after the last settle.
    private const string Settle = """
        local function settle(prefix, now, first)
          local count = tonumber(ARGV[first] or '0')
          local open, expiry = prefix .. ':open', prefix .. ':openx'
          for n = 0, count - 1 do
            local i = first + 1 + n * 5
            local id, mode, tokens, cost, flags = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]
            local first_time = true
            if mode ~= 'c' then
              first_time = redis.call('SET', prefix .. ':void:' .. id, '1', 'NX', 'EX', 86400) and true or false
            end
            if first_time then
              local record = redis.call('HGET', open, id)
              if record then
                redis.call('HDEL', open, id)
                redis.call('ZREM', expiry, id)
                local second, reserved, reservedCost, day, month, booked = string.match(record, '^(%d+)|(%-?%d+)|([^|]*)|(%d*)|(%d*)|(%d+)$')
                second, reserved, reservedCost = tonumber(second), tonumber(reserved), tonumber(reservedCost)
                local served = mode ~= 'x'
                if on(booked, 3) then redis.call('ZREM', prefix .. ':parallel', id) end
                if now - second < 60 then
                  if on(booked, 1) and not served then correct(prefix .. ':rpm', second, -1) end
                  if on(booked, 2) then correct(prefix .. ':tpm', second, (served and tokens or 0) - reserved) end
                end
                local delta = (served and cost or 0) - reservedCost
                if on(booked, 4) then spend(prefix .. ':spend:d:' .. day, delta, 172800) end
                if on(booked, 5) then spend(prefix .. ':spend:m:' .. month, delta, 3456000) end
              elseif mode == 'u' then
                if on(flags, 1) then addAt(prefix .. ':rpm', now, now, 1) end
                if on(flags, 2) then addAt(prefix .. ':tpm', now, now, tokens) end
                if on(flags, 4) or on(flags, 5) then
                  local day, month = today(now)
                  if on(flags, 4) then spend(prefix .. ':spend:d:' .. day, cost, 172800) end
                  if on(flags, 5) then spend(prefix .. ':spend:m:' .. month, cost, 3456000) end
                end
              end
            end
          end
          return first + 1 + count * 5
        end
        """;

    // Writes the books a replica kept while Redis was unreachable (fail-open): requests and tokens per
    // second into the windows (those still in them), spend per day and month into the budgets. Each
    // batch has an id and is applied once however often it is sent (':batch:ID' remembers it for a day).
    // ARGV from index `at`: a count, then per batch: id, the key's limit flags, a count of seconds and
    // (second, requests, tokens) each, a count of days and (yyyyMMdd, cost) each, a count of months and
    // (yyyyMM, cost) each.
    private const string Books = """
        local function books(prefix, now, at)
          local batches = tonumber(ARGV[at] or '0')
          at = at + 1
          for _ = 1, batches do
            local flags = ARGV[at + 1]
            local fresh = redis.call('SET', prefix .. ':batch:' .. ARGV[at], '1', 'NX', 'EX', 86400) and true or false
            at = at + 2
            for _ = 1, tonumber(ARGV[at]) do
              if fresh then
                local second = tonumber(ARGV[at + 1])
                if on(flags, 1) then addAt(prefix .. ':rpm', now, second, tonumber(ARGV[at + 2])) end
                if on(flags, 2) then addAt(prefix .. ':tpm', now, second, tonumber(ARGV[at + 3])) end
              end
              at = at + 3
            end
            at = at + 1
            for _ = 1, tonumber(ARGV[at]) do
              if fresh and on(flags, 4) then spend(prefix .. ':spend:d:' .. ARGV[at + 1], tonumber(ARGV[at + 2]), 172800) end
              at = at + 2
            end
            at = at + 1
            for _ = 1, tonumber(ARGV[at]) do
              if fresh and on(flags, 5) then spend(prefix .. ':spend:m:' .. ARGV[at + 1], tonumber(ARGV[at + 2]), 3456000) end
              at = at + 2
            end
            at = at + 1
          end
          return at
        end
        """;

    private const string Reconcile = Civil + "\n" + Window + "\n" + AddAt + "\n" + Settle + "\n" + Books;

    /// <summary>
    /// Settles the key's requests that finished since its last call and writes any outage books, then
    /// admits a request: budgets, concurrency, RPM, TPM, in that order; reserves on success and books
    /// the request under its operation id (see <c>Settle</c>), so settling it is exact and repeatable.
    /// KEYS[1] = key prefix <c>{k:ID}</c>. ARGV = rpm, tpm, parallel, daily budget, monthly budget (-1 = none),
    /// estimated tokens, estimated cost, operation id, lease (ms), record retention (ms), then the settles
    /// (see <c>Settle</c>) and the outage books (see <c>Books</c>).
    /// Returns reason ('' = admitted, 'void' = this admission was already settled as timed out), requests,
    /// tokens, oldest request second, oldest token second, now, in flight, day, month, day spend, month spend.
    /// </summary>
    public const string AdmitKey = Reconcile + "\n" + """
        local prefix = KEYS[1]
        local rpm, tpm, parallel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local daily, monthly = tonumber(ARGV[4]), tonumber(ARGV[5])
        local estimate, id, lease, retention = tonumber(ARGV[6]), ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
        local time = redis.call('TIME')
        local now = tonumber(time[1])
        local nowMs = now * 1000 + math.floor(tonumber(time[2]) / 1000)
        books(prefix, now, settle(prefix, now, 11))
        local day, month = today(now)
        local rpmKey, tpmKey, parallelKey = prefix .. ':rpm', prefix .. ':tpm', prefix .. ':parallel'
        local openKey, expiryKey = prefix .. ':open', prefix .. ':openx'
        local dayKey, monthKey = prefix .. ':spend:d:' .. day, prefix .. ':spend:m:' .. month

        -- Settled already: this is an admission that timed out on the replica and reaches Redis late.
        if redis.call('EXISTS', prefix .. ':void:' .. id) == 1 then
          return { 'void', 0, 0, 0, 0, now, 0, day, month, '', '' }
        end

        -- Bookings of requests whose replica died before settling them are dropped after the retention.
        local stale = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', nowMs, 'LIMIT', 0, 16)
        if #stale > 0 then
          redis.call('HDEL', openKey, unpack(stale))
          redis.call('ZREM', expiryKey, unpack(stale))
        end

        local requests, requestsOldest, tokens, tokensOldest, inFlight = 0, 0, 0, 0, 0
        if rpm >= 0 then requests, requestsOldest = window(rpmKey, now) end
        if tpm >= 0 then tokens, tokensOldest = window(tpmKey, now) end
        if parallel >= 0 then
          redis.call('ZREMRANGEBYSCORE', parallelKey, '-inf', nowMs)
          inFlight = redis.call('ZCARD', parallelKey)
        end
        local daySpent, monthSpent = '', ''
        if daily >= 0 then daySpent = redis.call('GET', dayKey) or '0' end
        if monthly >= 0 then monthSpent = redis.call('GET', monthKey) or '0' end

        local reason = ''
        if daily >= 0 and tonumber(daySpent) >= daily then reason = 'budget_daily'
        elseif monthly >= 0 and tonumber(monthSpent) >= monthly then reason = 'budget_monthly'
        elseif parallel >= 0 and inFlight >= parallel then reason = 'concurrency'
        elseif rpm >= 0 and requests + 1 > rpm then reason = 'requests'
        elseif tpm >= 0 and tokens + estimate > tpm then reason = 'tokens'
        end

        if reason == '' then
          if rpm >= 0 then
            add(rpmKey, now, 1, requestsOldest)
            requests = requests + 1
            if requestsOldest == 0 then requestsOldest = now end
          end
          if tpm >= 0 then
            add(tpmKey, now, estimate, tokensOldest)
            tokens = tokens + estimate
            if tokensOldest == 0 then tokensOldest = now end
          end
          if parallel >= 0 then
            redis.call('ZADD', parallelKey, nowMs + lease, id)
            redis.call('PEXPIRE', parallelKey, lease + 60000)
            inFlight = inFlight + 1
          end
          local budgeted = daily >= 0 or monthly >= 0
          if daily >= 0 then daySpent = redis.call('INCRBYFLOAT', dayKey, ARGV[7]); redis.call('EXPIRE', dayKey, 172800) end
          if monthly >= 0 then monthSpent = redis.call('INCRBYFLOAT', monthKey, ARGV[7]); redis.call('EXPIRE', monthKey, 3456000) end
          local flags = (rpm >= 0 and '1' or '0') .. (tpm >= 0 and '1' or '0') .. (parallel >= 0 and '1' or '0') .. (daily >= 0 and '1' or '0') .. (monthly >= 0 and '1' or '0')
          redis.call('HSET', openKey, id, now .. '|' .. (tpm >= 0 and estimate or 0) .. '|' .. (budgeted and ARGV[7] or '0') .. '|' .. day .. '|' .. month .. '|' .. flags)
          redis.call('ZADD', expiryKey, nowMs + retention, id)
          redis.call('PEXPIRE', openKey, retention + 60000)
          redis.call('PEXPIRE', expiryKey, retention + 60000)
        end

        return { reason, requests, tokens, requestsOldest, tokensOldest, now, inFlight, day, month, daySpent, monthSpent }
        """;

    /// <summary>
    /// Settles a key's finished requests and writes its outage books when no admission carried them
    /// (the key went quiet, or Redis just came back).
    /// KEYS[1] = key prefix. ARGV = the settles (see <c>Settle</c>) from ARGV[1], then the books (see <c>Books</c>).
    /// Returns day, month, day spend, month spend (as the admission does).
    /// </summary>
    public const string SettleKey = Reconcile + "\n" + """
        local prefix = KEYS[1]
        local now = tonumber(redis.call('TIME')[1])
        books(prefix, now, settle(prefix, now, 1))
        local day, month = today(now)
        return { day, month, redis.call('GET', prefix .. ':spend:d:' .. day) or '0', redis.call('GET', prefix .. ':spend:m:' .. month) or '0' }
        """;

    /// <summary>
    /// Renews the concurrency leases of requests this replica is still serving, and keeps their bookings.
    /// A request settled in the meantime (no booking) is left alone; one whose lease ran out while Redis
    /// was unreachable is put back, since it is still running.
    /// KEYS[1] = key prefix. ARGV = lease (ms), retention (ms), operation ids. Returns how many were renewed.
    /// </summary>
    public const string RenewLeases = """
        local prefix = KEYS[1]
        local time = redis.call('TIME')
        local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        local lease, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
        local open, expiry, parallel = prefix .. ':open', prefix .. ':openx', prefix .. ':parallel'
        local renewed = 0
        for i = 3, #ARGV do
          if redis.call('HEXISTS', open, ARGV[i]) == 1 then
            redis.call('ZADD', parallel, nowMs + lease, ARGV[i])
            redis.call('ZADD', expiry, nowMs + retention, ARGV[i])
            renewed = renewed + 1
          end
        end
        if renewed > 0 then
          redis.call('PEXPIRE', parallel, lease + 60000)
          redis.call('PEXPIRE', open, retention + 60000)
          redis.call('PEXPIRE', expiry, retention + 60000)
        end
        return renewed
        """;

    /// <summary>
    /// Takes one request and its estimated tokens from a deployment's provider limits.
    /// KEYS[1] = deployment prefix <c>{mg:deployments}:NAME</c>. ARGV = rpm, tpm (-1 = none), estimated tokens.
    /// Returns admitted (1/0), seconds until capacity frees (when refused, or when this request used the last of it), now.
    /// </summary>
    public const string AcquireDeployment = Window + "\n" + """
        local prefix = KEYS[1]
        local rpm, tpm, estimate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local rw, tw = tonumber(ARGV[4] or '60'), tonumber(ARGV[5] or '60')
        local now = tonumber(redis.call('TIME')[1])
        -- A window other than the minute has keys of its own, so a reload that changes it starts over.
        local rpmKey = rw == 60 and prefix .. ':rpm' or prefix .. ':rpm:' .. rw
        local tpmKey = tw == 60 and prefix .. ':tpm' or prefix .. ':tpm:' .. tw
        local requests, requestsOldest, tokens, tokensOldest = 0, 0, 0, 0
        if rpm >= 0 then requests, requestsOldest = window(rpmKey, now, rw) end
        if tpm >= 0 then tokens, tokensOldest = window(tpmKey, now, tw) end
        local function wait(oldest, length) if oldest > 0 then return oldest + length - now end return length end
        if rpm >= 0 and requests + 1 > rpm then return { 0, wait(requestsOldest, rw), now } end
        if tpm >= 0 and tokens + estimate > tpm then return { 0, wait(tokensOldest, tw), now } end
        if rpm >= 0 then
          add(rpmKey, now, 1, requestsOldest, rw)
          if requestsOldest == 0 then requestsOldest = now end
        end
        if tpm >= 0 then
          add(tpmKey, now, estimate, tokensOldest, tw)
          if tokensOldest == 0 then tokensOldest = now end
        end
        local spent = 0
        if rpm >= 0 and requests + 1 >= rpm then spent = wait(requestsOldest, rw) end
        if tpm >= 0 and tokens + estimate >= tpm then spent = math.max(spent, wait(tokensOldest, tw)) end
        return { 1, spent, now }
        """;

    /// <summary>Corrects a deployment's token bucket. KEYS[1] = deployment prefix. ARGV = reservation second, token delta.</summary>
    public const string SettleDeployment = Window + "\n" + """
        local now = tonumber(redis.call('TIME')[1])
        local tw = tonumber(ARGV[3] or '60')
        local key = tw == 60 and KEYS[1] .. ':tpm' or KEYS[1] .. ':tpm:' .. tw
        if now - tonumber(ARGV[1]) < tw then correct(key, ARGV[1], tonumber(ARGV[2])) end
        return 1
        """;

    /// <summary>
    /// Adds a batch of merged usage totals to the days' hashes, at most once: each replica numbers its
    /// batches and sends the next only once the last was answered, so a batch whose number is not above
    /// the last one applied for that replica is a repeat (a flush that timed out and was sent again, or
    /// one that reached a frozen Redis's buffer) and is skipped.
    /// KEYS[1] = <c>{mg:usage}</c>. ARGV = replica id, batch number, entry count, then per entry: day
    /// (yyyyMMdd), dimensions, and the fourteen metric values in <c>RedisUsageStore.Metrics</c> order.
    /// Returns 1 when applied, 0 for a repeat.
    /// </summary>
    public const string RecordUsage = """
        local prefix = KEYS[1]
        local applied = prefix .. ':applied:' .. ARGV[1]
        local batch = tonumber(ARGV[2])
        if tonumber(redis.call('GET', applied) or '0') >= batch then return 0 end
        local metrics = { 'requests', 'errors', 'input', 'cached', 'output', 'cost', 'latency_ms', 'ttft_ms', 'ttft_samples', 'cache_write', 'reasoning', 'cache_hits', 'cache_saved_tokens', 'cache_saved_usd' }
        local at = 4
        for _ = 1, tonumber(ARGV[3]) do
          local key, dimensions = prefix .. ':' .. ARGV[at], ARGV[at + 1]
          for m = 1, #metrics do
            local value = ARGV[at + 1 + m]
            if value ~= '0' then redis.call('HINCRBYFLOAT', key, dimensions .. '|' .. metrics[m], value) end
          end
          redis.call('EXPIRE', key, 34560000)
          at = at + 2 + #metrics
        end
        redis.call('SET', applied, batch, 'EX', 604800)
        return 1
        """;
}
