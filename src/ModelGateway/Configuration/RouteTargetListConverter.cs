using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Configuration;

/// <summary>
/// Reads route targets written either as plain deployment names or as
/// <c>{ deployment: name, weight: 3, retries: 2 }</c> objects, so simple routes stay one line long.
/// </summary>
internal sealed class RouteTargetListConverter : JsonConverter<List<RouteTargetDocument>>
{
    public override List<RouteTargetDocument>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("expected a list of deployment names");
        }

        var targets = new List<RouteTargetDocument>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String:
                    targets.Add(new RouteTargetDocument { Deployment = reader.GetString() });
                    break;
                case JsonTokenType.StartObject:
                    targets.Add(ReadObject(ref reader));
                    break;
                default:
                    throw new JsonException("a target is a deployment name or { deployment: name, weight: n, retries: n }");
            }
        }

        return targets;
    }

    private static RouteTargetDocument ReadObject(ref Utf8JsonReader reader)
    {
        var target = new RouteTargetDocument();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString();
            reader.Read();
            switch (name)
            {
                case "deployment" when reader.TokenType is JsonTokenType.String:
                    target.Deployment = reader.GetString();
                    break;
                case "weight" when reader.TokenType is JsonTokenType.Number:
                    target.Weight = reader.GetDouble();
                    break;
                case "retries" when reader.TokenType is JsonTokenType.Number && reader.TryGetInt32(out var retries):
                    target.Retries = retries;
                    break;
                case "deployment":
                case "weight":
                case "retries":
                    throw new JsonException($"'{name}' has the wrong type");
                default:
                    throw new JsonException($"unknown field '{name}' (a target has 'deployment', 'weight' and 'retries')");
            }
        }

        return target;
    }

    public override void Write(Utf8JsonWriter writer, List<RouteTargetDocument> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var target in value)
        {
            writer.WriteStartObject();
            writer.WriteString("deployment", target.Deployment);
            if (target.Weight is { } weight)
            {
                writer.WriteNumber("weight", weight);
            }

            if (target.Retries is { } retries)
            {
                writer.WriteNumber("retries", retries);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
