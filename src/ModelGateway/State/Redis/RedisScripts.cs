namespace ModelGateway.State.Redis;

/// <summary>
/// The Lua scripts behind shared limits. Each runs atomically in one round trip, takes its time from
/// Redis (<c>TIME</c>), and touches only keys that share one hash tag, so Redis Cluster runs it on
/// one node. StackExchange.Redis sends them by SHA after the first call.
/// </summary>
internal static class RedisScripts
{
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
        local function window(key, now)
          local head = redis.call('HMGET', key, 's', 'o')
          local sum, oldest = tonumber(head[1] or '0'), tonumber(head[2] or '0')
          if oldest == 0 or oldest > now - 60 then return sum, oldest end
          local second = oldest
          while second <= now - 60 do
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

        local function add(key, now, amount, oldest)
          redis.call('HINCRBY', key, now, amount)
          redis.call('HINCRBY', key, 's', amount)
          if oldest == 0 then redis.call('HSET', key, 'o', now) end
          redis.call('EXPIRE', key, 120)
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

    // Settles finished requests of one key: ARGV from index `first` holds a count, then per request
    // reservation second, token delta, lease id, cost delta, day, month and four flags ("1"/"0": has
    // TPM, holds a concurrency slot, has a daily budget, has a monthly budget).
    private const string Settle = """
        local function settle(prefix, now, first)
          local count = tonumber(ARGV[first] or '0')
          for n = 0, count - 1 do
            local i = first + 1 + n * 7
            local flags = ARGV[i + 6]
            if string.sub(flags, 1, 1) == '1' and now - tonumber(ARGV[i]) < 60 then
              correct(prefix .. ':tpm', ARGV[i], tonumber(ARGV[i + 1]))
            end
            if string.sub(flags, 2, 2) == '1' then redis.call('ZREM', prefix .. ':parallel', ARGV[i + 2]) end
            if ARGV[i + 3] ~= '0' then
              if string.sub(flags, 3, 3) == '1' then redis.call('INCRBYFLOAT', prefix .. ':spend:d:' .. ARGV[i + 4], ARGV[i + 3]) end
              if string.sub(flags, 4, 4) == '1' then redis.call('INCRBYFLOAT', prefix .. ':spend:m:' .. ARGV[i + 5], ARGV[i + 3]) end
            end
          end
        end
        """;

    /// <summary>
    /// Settles the key's requests that finished since its last call, then admits a request: budgets,
    /// concurrency, RPM, TPM, in that order; reserves on success.
    /// KEYS[1] = key prefix <c>{k:ID}</c>. ARGV = rpm, tpm, parallel, daily budget, monthly budget (-1 = none),
    /// estimated tokens, estimated cost, request id, lease (ms), then the settles (see <c>Settle</c>).
    /// Returns reason ('' = admitted), requests, tokens, oldest request second, oldest token second, now, in flight, day, month.
    /// </summary>
    public const string AdmitKey = Civil + "\n" + Window + "\n" + Settle + "\n" + """
        local prefix = KEYS[1]
        local rpm, tpm, parallel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local daily, monthly = tonumber(ARGV[4]), tonumber(ARGV[5])
        local estimate, lease = tonumber(ARGV[6]), tonumber(ARGV[9])
        local time = redis.call('TIME')
        local now = tonumber(time[1])
        local nowMs = now * 1000 + math.floor(tonumber(time[2]) / 1000)
        settle(prefix, now, 10)
        local y, m, d = civil(math.floor(now / 86400))
        local day, month = string.format('%04d%02d%02d', y, m, d), string.format('%04d%02d', y, m)
        local rpmKey, tpmKey, parallelKey = prefix .. ':rpm', prefix .. ':tpm', prefix .. ':parallel'
        local dayKey, monthKey = prefix .. ':spend:d:' .. day, prefix .. ':spend:m:' .. month

        local requests, requestsOldest, tokens, tokensOldest, inFlight = 0, 0, 0, 0, 0
        if rpm >= 0 then requests, requestsOldest = window(rpmKey, now) end
        if tpm >= 0 then tokens, tokensOldest = window(tpmKey, now) end
        if parallel >= 0 then
          redis.call('ZREMRANGEBYSCORE', parallelKey, '-inf', nowMs)
          inFlight = redis.call('ZCARD', parallelKey)
        end

        local reason = ''
        if daily >= 0 and tonumber(redis.call('GET', dayKey) or '0') >= daily then reason = 'budget_daily'
        elseif monthly >= 0 and tonumber(redis.call('GET', monthKey) or '0') >= monthly then reason = 'budget_monthly'
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
            redis.call('ZADD', parallelKey, nowMs + lease, ARGV[8])
            redis.call('PEXPIRE', parallelKey, lease + 60000)
            inFlight = inFlight + 1
          end
          if daily >= 0 then
            redis.call('INCRBYFLOAT', dayKey, ARGV[7])
            redis.call('EXPIRE', dayKey, 172800)
          end
          if monthly >= 0 then
            redis.call('INCRBYFLOAT', monthKey, ARGV[7])
            redis.call('EXPIRE', monthKey, 3456000)
          end
        end

        return { reason, requests, tokens, requestsOldest, tokensOldest, now, inFlight, day, month }
        """;

    /// <summary>
    /// Settles a key's finished requests that no admission carried (the key went quiet).
    /// KEYS[1] = key prefix. ARGV = the settles (see <c>Settle</c>), from ARGV[1].
    /// </summary>
    public const string SettleKey = Window + "\n" + Settle + "\n" + """
        settle(KEYS[1], tonumber(redis.call('TIME')[1]), 1)
        return 1
        """;

    /// <summary>
    /// Takes one request and its estimated tokens from a deployment's provider limits.
    /// KEYS[1] = deployment prefix <c>{mg:deployments}:NAME</c>. ARGV = rpm, tpm (-1 = none), estimated tokens.
    /// Returns admitted (1/0), seconds until capacity frees (when refused, or when this request used the last of it), now.
    /// </summary>
    public const string AcquireDeployment = Window + "\n" + """
        local prefix = KEYS[1]
        local rpm, tpm, estimate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local now = tonumber(redis.call('TIME')[1])
        local rpmKey, tpmKey = prefix .. ':rpm', prefix .. ':tpm'
        local requests, requestsOldest, tokens, tokensOldest = 0, 0, 0, 0
        if rpm >= 0 then requests, requestsOldest = window(rpmKey, now) end
        if tpm >= 0 then tokens, tokensOldest = window(tpmKey, now) end
        local function wait(oldest) if oldest > 0 then return oldest + 60 - now end return 60 end
        if rpm >= 0 and requests + 1 > rpm then return { 0, wait(requestsOldest), now } end
        if tpm >= 0 and tokens + estimate > tpm then return { 0, wait(tokensOldest), now } end
        if rpm >= 0 then
          add(rpmKey, now, 1, requestsOldest)
          if requestsOldest == 0 then requestsOldest = now end
        end
        if tpm >= 0 then
          add(tpmKey, now, estimate, tokensOldest)
          if tokensOldest == 0 then tokensOldest = now end
        end
        local spent = 0
        if rpm >= 0 and requests + 1 >= rpm then spent = wait(requestsOldest) end
        if tpm >= 0 and tokens + estimate >= tpm then spent = math.max(spent, wait(tokensOldest)) end
        return { 1, spent, now }
        """;

    /// <summary>Corrects a deployment's token bucket. KEYS[1] = deployment prefix. ARGV = reservation second, token delta.</summary>
    public const string SettleDeployment = Window + "\n" + """
        local now = tonumber(redis.call('TIME')[1])
        if now - tonumber(ARGV[1]) < 60 then correct(KEYS[1] .. ':tpm', ARGV[1], tonumber(ARGV[2])) end
        return 1
        """;

    /// <summary>
    /// Adds one request's usage to the day's totals. KEYS[1] = <c>{mg:usage}</c>. ARGV = day (yyyyMMdd, '' = today by
    /// Redis time), dimensions, then metric/value pairs.
    /// </summary>
    public const string RecordUsage = Civil + "\n" + """
        local day = ARGV[1]
        if day == '' then
          local y, m, d = civil(math.floor(tonumber(redis.call('TIME')[1]) / 86400))
          day = string.format('%04d%02d%02d', y, m, d)
        end
        local key = KEYS[1] .. ':' .. day
        for i = 3, #ARGV, 2 do
          redis.call('HINCRBYFLOAT', key, ARGV[2] .. '|' .. ARGV[i], ARGV[i + 1])
        end
        redis.call('EXPIRE', key, 34560000)
        return 1
        """;
}
