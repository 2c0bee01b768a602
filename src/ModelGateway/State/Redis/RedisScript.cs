using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// A Lua script sent by its SHA-1 (<c>EVALSHA</c>), computed once. Handing StackExchange.Redis the
/// script's text instead makes it look the text up in its script cache on every call, hashing all of
/// it: for the multi-kilobyte admission script that was 4% of a keyed request's CPU.
/// </summary>
internal sealed class RedisScript
{
    public RedisScript(string text)
    {
        Text = text;
        // Redis names scripts by SHA-1; this is an identifier, not a security measure.
        Hash = SHA1.HashData(Encoding.UTF8.GetBytes(text));
    }

    public string Text { get; }

    public byte[] Hash { get; }

    /// <summary>
    /// Runs the script by its hash; when the server does not know it (a restarted or flushed Redis, a
    /// failover to a fresh replica) sends the text once, which also loads it for the next calls.
    /// </summary>
    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return await database.ScriptEvaluateAsync(Hash, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(Text, keys, values).ConfigureAwait(false);
        }
    }
}
